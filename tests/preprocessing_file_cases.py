"""The data and model of the preprocessing ``.keras`` file tests, written once for Keras
(the fixture script) and kcompile (the tests): ``build`` takes either module."""

from __future__ import annotations

from typing import Any

import numpy as np

CITIES = ["paris", "oslo", "paris", "rome", "oslo", "paris", "lima", "rome"]
CODES = [3, 7, 3, 9, 7, 3, 11, 9]
TEXTS = [
    "The cat sat.",
    "A dog ran, the cat sat!",
    "dogs and cats",
    "the end",
    "Cat and dog",
    "sat on the mat",
    "a mat",
    "the cat",
]


def rows() -> dict[str, np.ndarray]:
    """Eight rows (a city and a code out of the vocabulary in the last two)."""
    rng = np.random.default_rng(7)
    return {
        "city": np.array([*CITIES[:6], "tokyo", "rome"], dtype=object).reshape(-1, 1),
        "code": np.array([*CODES[:6], 42, 9], dtype=np.int64).reshape(-1, 1),
        "text": np.array(TEXTS, dtype=object),
        "key": np.array(CITIES, dtype=object).reshape(-1, 1),
        "amount": rng.normal(10.0, 3.0, size=(8, 1)).astype(np.float32),
        "num": rng.normal(2.0, 5.0, size=(8, 3)).astype(np.float32),
    }


def model_inputs(data: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [data[k] for k in ("city", "code", "text", "key", "amount", "num")]


def build(keras: Any, data: dict[str, np.ndarray]) -> Any:
    """The model, its preprocessing layers adapted on ``data`` (the training rows)."""
    adapt = {
        "city": np.array(CITIES, dtype=object).reshape(-1, 1),
        "code": np.array(CODES, dtype=np.int64).reshape(-1, 1),
    }
    L = keras.layers
    city_in = keras.Input((1,), dtype="string", name="city_in")
    code_in = keras.Input((1,), dtype="int64", name="code_in")
    text_in = keras.Input((), dtype="string", name="text_in")
    key_in = keras.Input((1,), dtype="string", name="key_in")
    amount_in = keras.Input((1,), name="amount_in")
    num_in = keras.Input((3,), name="num_in")
    city = L.StringLookup(output_mode="one_hot", name="city")
    city.adapt(adapt["city"])
    code = L.IntegerLookup(output_mode="multi_hot", name="code")
    code.adapt(adapt["code"])
    text = L.TextVectorization(max_tokens=12, output_sequence_length=4, name="text")
    text.adapt(data["text"])
    key = L.Hashing(num_bins=5, output_mode="one_hot", name="key")
    amount = L.Discretization(num_bins=3, output_mode="one_hot", name="amount")
    amount.adapt(data["amount"])
    norm = L.Normalization(name="norm")
    norm.adapt(data["num"])
    words = L.Flatten(name="words")(L.Embedding(12, 2, name="embed")(text(text_in)))
    joined = L.Concatenate(name="joined")(
        [
            city(city_in),
            code(code_in),
            words,
            key(key_in),
            amount(amount_in),
            norm(num_in),
        ]
    )
    out = L.Dense(2, name="out")(joined)
    return keras.Model([city_in, code_in, text_in, key_in, amount_in, num_in], out)
