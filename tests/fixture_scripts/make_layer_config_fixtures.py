"""Keras 3's ``get_config()`` of each layer of ``layer_config_cases`` (JAX backend), as
JSON, into ``keras_fixtures/layer_configs.json`` with the Keras version; a case Keras
cannot make here (a layer that needs TensorFlow) is stored as its error. Run it where
Keras is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_layer_config_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from layer_config_cases import CASES  # noqa: E402


def main() -> None:
    configs = {}
    for case, expression in CASES.items():
        try:
            layer = eval(expression, {"L": keras.layers})
            config = layer.get_config()
        except Exception as e:  # (recorded: the test then expects kcompile to differ)
            configs[case] = {"error": f"{type(e).__name__}: {e}"}
            continue
        config.pop("name", None)
        configs[case] = json.loads(json.dumps(config, default=repr))
    out = {"keras_version": keras.__version__, "configs": configs}
    (TESTS / "keras_fixtures" / "layer_configs.json").write_text(
        json.dumps(out, indent=1, sort_keys=True) + "\n"
    )


if __name__ == "__main__":
    main()
