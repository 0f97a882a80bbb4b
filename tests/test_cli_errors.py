"""The command line ends with a message and an exit status, not a traceback."""

from __future__ import annotations

import subprocess
import sys

from tests.classifiers import dense_classifier


def test_compile_of_a_malformed_dump_prints_its_location_and_exits_2(tmp_path):
    bad = tmp_path / "bad.kir"
    bad.write_text("graph g(%x: f32[N,2] data) {\n  %0 = nope(%x) : f32[N,2]\n  return y=%0\n}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "kcompile.tools.cli", "compile", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{bad}:2:8: unknown op 'nope'"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_while_run_loads_its_data_exits_130(tmp_path, monkeypatch, capsys):
    from kcompile.artifact import data as artifact_data
    from kcompile.tools import cli

    path = str(tmp_path / "m.kc")
    dense_classifier(4, 5, seed=1).export(path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact_data, "read_folder", interrupted)
    status = cli.main(["run", path, "--data", str(tmp_path), "--epochs", "1"])
    assert status == 130
    assert "stopped before training" in capsys.readouterr().err
