"""The built wheel installs one top-level package, kcompile, and trains from a fresh venv.

The repository keeps ``ir/``, ``passes/`` and ``codegen/`` at its top; installed, they
are ``kcompile.ir``, ``kcompile.passes`` and ``kcompile.codegen``, so kcompile cannot
collide with unrelated distributions named ``ir`` or ``codegen``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import llvmlite
import networkx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

TRAIN = textwrap.dedent(
    """
    import importlib.util, json, sys
    import numpy as np
    import kcompile as keras
    from kcompile import layers

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="relu"),
                              layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    history = model.fit(x, x[:, :1], epochs=2, batch_size=8, verbose=0)
    import kcompile.codegen.lowering.module, kcompile.ir.graph, kcompile.passes.pipeline
    print(json.dumps({
        "loss": history.history["loss"],
        "files": [m.__file__ for m in (keras, kcompile.ir.graph, kcompile.codegen.lowering.module,
                                       kcompile.passes.pipeline)],
        "top_level": [n for n in ("ir", "passes", "codegen")
                      if importlib.util.find_spec(n) is not None],
    }))
    """
)


def _site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python*/site-packages")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{done.stderr}")
    (built,) = out.glob("kcompile-*.whl")
    return built


def test_the_wheel_holds_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"kcompile"}
    for module in (
        "ir/graph.py",
        "ir/ops/fused.py",
        "passes/fuse.py",
        "codegen/lowering/module.py",
    ):
        assert f"kcompile/{module}" in names
    # Every source folder of the checkout is in the wheel.
    for package in ("ir", "passes", "codegen", "kcompile"):
        for path in (ROOT / package).rglob("__init__.py"):
            relative = path.relative_to(ROOT).as_posix()
            inside = relative if package == "kcompile" else f"kcompile/{relative}"
            assert inside in names, f"{relative} is missing from the wheel"


@pytest.mark.slow  # a fresh venv and a compile from nothing
def test_the_wheel_trains_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = _site_packages(venv)
    # The dependencies come from this interpreter's site-packages, added as plain path
    # entries: their .pth files (among them this checkout's editable install) stay unread.
    dependency_dirs = {Path(m.__file__).resolve().parent.parent for m in (np, llvmlite, networkx)}
    (site / "dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(dependency_dirs)))
    python = venv / "bin" / "python"
    install = ["install", "-q", "--no-deps", "--disable-pip-version-check", str(wheel)]
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), *install],
        check=True,
        capture_output=True,
        timeout=300,
    )
    done = subprocess.run(
        [str(python), "-c", TRAIN],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KCOMPILE_CACHE": "0"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(str(site) in f for f in result["files"]), result["files"]
    assert result["top_level"] == []
    assert np.all(np.isfinite(result["loss"])) and result["loss"][1] < result["loss"][0]
    assert (venv / "bin" / "kcompile").exists()
