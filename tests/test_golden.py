"""Golden dumps of every stage of the example model's three steps.

A change to tracing, autodiff or any pass shows up here as a text diff.
Update them on purpose with:  KCOMPILE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kcompile.tools import inspect
from tests.test_fashion_mnist import load_example

GOLDEN = Path(__file__).parent / "golden" / "mnist_mlp"
UPDATE = bool(os.environ.get("KCOMPILE_UPDATE_GOLDEN"))


@pytest.mark.parametrize("step", inspect.STEPS)
def test_example_model_stages_match_golden_dumps(step):
    model = load_example().build_model()
    stages = inspect.pipeline_stages(model, step)
    # One folder per step graph, named as KCOMPILE_DUMP names it (train_step, ...).
    folder = GOLDEN / stages[0][1].split("(", 1)[0].removeprefix("graph ")
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.kir"):
            old.unlink()
    names = []
    for i, (name, text) in enumerate(stages):
        path = folder / f"{i:03d}_{name}.kir"
        names.append(path.name)
        if UPDATE:
            path.write_text(text)
        assert path.exists(), f"no golden dump {path}; run with KCOMPILE_UPDATE_GOLDEN=1"
        assert text == path.read_text(), f"{path.name} changed; see the diff above"
    assert sorted(p.name for p in folder.glob("*.kir")) == names
