"""The code-health measures that issue 25 set targets for (``benchmarks/code_health.py``)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _code_health():
    spec = importlib.util.spec_from_file_location(
        "code_health", ROOT / "benchmarks" / "code_health.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_few_reaches_into_a_models_private_attributes_across_modules():
    reaches = _code_health().private_reaches()
    assert len(reaches) <= 5, "\n".join(reaches)


def test_each_private_reach_says_why():
    """Every line that reaches into a model class's internals carries a comment."""
    for reach in _code_health().private_reaches():
        where = reach.split()[0]
        path, line = where.rsplit(":", 1)
        text = (ROOT / path).read_text().splitlines()[int(line) - 1]
        assert "#" in text, f"{reach}: no comment says why"


def test_the_measure_finds_a_reach_and_ignores_self(tmp_path, monkeypatch):
    health = _code_health()
    package = tmp_path / "kcompile"
    package.mkdir()
    (package / "model.py").write_text(
        "class Model:\n"
        "    def __init__(self):\n"
        "        self._steps = 1\n"
        "    def _build(self):\n"
        "        return self._steps\n"
    )
    (package / "user.py").write_text(
        "def use(model, other):\n"
        "    model._build()\n"
        "    super()._build()\n"
        "    return other._steps, other.__class__, getattr(model, '_steps')\n"
    )
    monkeypatch.setattr(health, "ROOT", tmp_path)
    assert health.model_privates() == {
        "_steps": {"kcompile/model.py"},
        "_build": {"kcompile/model.py"},
    }
    assert health.private_reaches() == [
        "kcompile/user.py:2 model._build",
        "kcompile/user.py:4 other._steps",
    ]
    assert health.named_private_reaches() == ["kcompile/user.py:4 getattr(model, '_steps')"]
