"""Dumps: ``KCOMPILE_DUMP``, ``kcompile ir --all`` and the example write one tree, a
folder per step graph (train_step, eval_step, predict), each complete: the IR after
every stage (.kir), the LLVM IR before and after optimization (.ll, .opt.ll) and the
assembly (.s), on a compile cache hit too."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import kcompile as keras
from kcompile import layers
from kcompile.ir import parse_graph
from kcompile.tools import cli
from tests.test_fashion_mnist import load_example

STEP_FOLDERS = ["eval_step", "predict", "train_step"]


def tiny_model():
    keras.backend.clear_session()  # the same layer names, so that dumps compare equal
    model = keras.Sequential([keras.Input(shape=(5,)), layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def run_every_step() -> None:
    """A fresh model through fit, evaluate and predict once each (each compiles its step)."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 5)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = tiny_model()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder``, by path relative to it, with its text."""
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_complete(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == STEP_FOLDERS
    for step in STEP_FOLDERS:
        files = sorted((folder / step).iterdir())
        kinds = {"kir": [], "ll": [], "opt.ll": [], "s": []}
        for path in files:
            assert path.stat().st_size > 0, f"{path} is empty"
            kinds[path.name.split(".", 1)[1]].append(path)
        assert all(len(paths) >= 1 for paths in kinds.values()), (step, [p.name for p in files])
        assert len(kinds["ll"]) == len(kinds["opt.ll"]) == len(kinds["s"]) == 1
        for path in kinds["kir"]:
            assert parse_graph(path.read_text(), str(path)).name == step
        # numbered in order: the stages, then the code made from the last of them
        names = [p.name for p in files]
        assert names[0] == "000_traced.kir" and names[-4].endswith("_plan_memory.kir")
        assert [n.split("_", 1)[1] for n in names[-3:]] == ["llvm.ll", "llvm.opt.ll", "asm.s"]
        assert [int(n[:3]) for n in names] == list(range(len(names)))
        assert "kc_entry" in kinds["ll"][0].read_text()
    assert (folder / "train_step" / "001_autodiff.kir").exists()


def test_kcompile_dump_writes_every_step_complete_also_on_a_cache_hit(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(cache))
    # Without verification the pipeline's result is cached too (runtime.prepared).
    monkeypatch.delenv("KCOMPILE_VERIFY", raising=False)
    run_every_step()  # fills both caches: the dumps below are asked for on hits
    assert any(cache.rglob("*")), "the compile cache stayed empty"
    trees = []
    for run in ("first", "second"):
        monkeypatch.setenv("KCOMPILE_DUMP", str(tmp_path / run))
        run_every_step()
        assert_complete(tmp_path / run)
        trees.append(tree(tmp_path / run))
    assert trees[0] == trees[1]


def test_example_and_cli_write_the_tree_kcompile_dump_writes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KCOMPILE_DUMP", str(tmp_path / "env"))
    run_every_step()
    by_env = tree(tmp_path / "env")
    monkeypatch.delenv("KCOMPILE_DUMP")
    example = load_example()
    folder = example.dump_steps(tiny_model(), str(tmp_path / "example"))
    assert folder == str(tmp_path / "example")
    out = capsys.readouterr().out
    assert str(tmp_path / "example") in out and "train_step,eval_step,predict" in out
    assert tree(tmp_path / "example") == by_env
    # with KCOMPILE_DUMP set the example writes into that tree, adding no other folder
    monkeypatch.setenv("KCOMPILE_DUMP", str(tmp_path / "env"))
    assert example.dump_steps(tiny_model()) == str(tmp_path / "env")
    assert tree(tmp_path / "env") == by_env
    monkeypatch.delenv("KCOMPILE_DUMP")
    model_file = tmp_path / "tiny.py"
    model_file.write_text(
        "import kcompile as keras\nfrom kcompile import layers\n\n\ndef build_model():\n"
        "    model = keras.Sequential([keras.Input(shape=(5,)), "
        'layers.Dense(3, activation="softmax")])\n'
        '    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", '
        'metrics=["accuracy"])\n    return model\n'
    )
    keras.backend.clear_session()  # build_model() names its layers afresh
    assert cli.main(["ir", str(model_file), "--all", str(tmp_path / "cli")]) == 0
    assert "train_step, eval_step, predict" in capsys.readouterr().out
    assert tree(tmp_path / "cli") == by_env


def test_a_dump_replaces_an_earlier_one_in_its_folder(tmp_path, monkeypatch):
    stale = tmp_path / "predict" / "099_asm.s"
    stale.parent.mkdir()
    stale.write_text("from an earlier compile")
    keep = tmp_path / "predict" / "notes.txt"
    keep.write_text("the user's own file")
    keras.inspect.dump_step(tiny_model(), "predict", str(tmp_path))
    assert not stale.exists() and keep.exists()
