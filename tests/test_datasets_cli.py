"""IDX reading, dataset lookup errors, and the kcompile command."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from kcompile.datasets import fashion_mnist
from kcompile.datasets.idx import read_idx
from kcompile.ir import parse_graph, verify
from kcompile.tools import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "mnist_mlp.py")


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_load_data_from_kcompile_data(tmp_path, monkeypatch, rng):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    arrays = [
        rng.integers(0, 255, (6, 28, 28)),
        rng.integers(0, 10, 6),
        rng.integers(0, 255, (4, 28, 28)),
        rng.integers(0, 10, 4),
    ]
    for name, a in zip(fashion_mnist.FILES, arrays):
        write_idx(folder / name, a)
    monkeypatch.setenv("KCOMPILE_DATA", str(tmp_path))
    monkeypatch.setattr("kcompile.datasets.idx.os.path.expanduser", lambda p: str(tmp_path / "x"))
    (x_train, _), (_, y_test) = fashion_mnist.load_data()
    assert x_train.dtype == np.uint8 and x_train.shape == (6, 28, 28)
    np.testing.assert_array_equal(y_test, arrays[3])


def test_missing_and_corrupt_files_are_explained(tmp_path, monkeypatch):
    from kcompile.datasets import idx

    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        idx.find_files(["nowhere"], ["nothing.gz"], "dataset-fashion-mnist")
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(ValueError, match="bad.gz: IDX header says \\(9,\\)"):
        read_idx(str(bad))


def test_cli_prints_every_stage_as_parseable_ir(capsys):
    for stage in cli.STAGES:
        assert cli.main(["ir", EXAMPLE, "--stage", stage]) == 0
        text = capsys.readouterr().out
        graph = parse_graph(text, stage)
        verify(graph)
        assert any(n.layer.startswith("dense") for n in graph.nodes)
    # (each stage's model is built anew: its optimizer is numbered, as Keras numbers it)
    assert re.search(r"adam(_\d+)?/dense", text) and "/kernel/momentum: f32" in text


def test_cli_reports_a_bad_model_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n")
    with pytest.raises(SystemExit, match="defines no build_model"):
        cli.main(["ir", str(path)])
    result = subprocess.run(
        [sys.executable, "-m", "kcompile.tools.cli", "ir", str(tmp_path / "no.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode != 0 and "no such file" in result.stderr


def test_cli_ir_any_stage_all_and_dot(tmp_path, capsys):
    assert cli.main(["ir", EXAMPLE, "--step", "eval", "--stage", "fuse"]) == 0
    fused = parse_graph(capsys.readouterr().out)
    assert any(n.op == "fused" for n in fused.nodes)
    assert cli.main(["ir", EXAMPLE, "--stage", "plan_memory"]) == 0
    planned = parse_graph(capsys.readouterr().out)
    assert planned.memory is not None and planned.memory.arena_bytes > 0
    with pytest.raises(SystemExit, match="no stage 'fusion' for step train; stages: traced"):
        cli.main(["ir", EXAMPLE, "--stage", "fusion"])
    assert cli.main(["ir", EXAMPLE, "--all", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "predict").iterdir())[0] == "000_traced.kir"
    assert (tmp_path / "train_step" / "001_autodiff.kir").exists()
    assert "wrote every stage" in capsys.readouterr().out
    assert cli.main(["ir", EXAMPLE, "--step", "predict", "--stage", "traced", "--dot"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "predict" {') and "->" in dot and dot.rstrip().endswith("}")


def test_cli_memory_and_check(capsys):
    assert cli.main(["memory", EXAMPLE, "--budget", "8MiB"]) == 0
    out = capsys.readouterr().out
    assert "arena (peak of intermediates)" in out and "weights" in out
    assert "largest batch within 8MiB" in out
    assert cli.main(["check", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert out.count("compute the same as the traced graph") == 3
