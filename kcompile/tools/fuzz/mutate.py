"""Mutation fuzzing of the IR text parser: printed graphs (fused bodies and memory plans
included), damaged a little, must parse or be refused with an ``IRParseError`` that
names the line and column; any other exception has escaped."""

from __future__ import annotations

import random
import re
import traceback
from collections import Counter

from kcompile.ir import IRParseError, parse_graph, print_graph

_TOKENS = (
    "%0", "%x", "%999", ",", "(", ")", "{", "}", "[", "]", ":", "=", "*", "N", "f32", "i32",
    "bool", "1e40", "-1", "99999999999999999999", "nan", "inf", "-inf", "graph", "memory",
    "return", "fused", "body=", "kind=", "#", '"', "0", "1.5", "true", "none", "[N,", "axes=",
    "live=5:-1", "offset=", "alias=", "bytes=4*N", "shape=[]", "value=[1.0]", "dtype=bool",
    "perm=[", "\n", " ", "matmul", "reduce_sum", "scan", "slice", "pad",
)  # fmt: skip
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WEIRD_NUMBERS = ("1e40", "-1", "0", "-0", "99999999999999999999", "2147483648", "1.5", "nan", "N")


def seed_texts() -> list[str]:
    """Printed graphs to mutate: random graphs and a small model's steps, traced and after
    the whole pipeline (fused bodies, memory plans)."""
    import kcompile as keras
    from kcompile import layers
    from kcompile.runtime import prepare
    from kcompile.tools.fuzz.graphs import random_graph

    texts = []
    for seed in range(4):
        g = random_graph(seed)
        texts.append(print_graph(g))
        texts.append(print_graph(prepare(g)))
    keras.backend.clear_session()
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            layers.Dense(5, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for kind in ("predict", "train"):
        g = model.step_graph(kind)
        texts.append(print_graph(g))
        texts.append(print_graph(prepare(g)))
    return texts


def mutate(text: str, rng: random.Random) -> str:
    """One to three small damages: spans deleted, tokens inserted or replaced, numbers made
    strange, lines dropped, repeated or swapped, the end cut off."""
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(8)
        at = rng.randrange(len(text) + 1)
        if kind == 0:
            text = text[:at] + text[at + rng.randint(1, 12) :]
        elif kind == 1:
            text = text[:at] + rng.choice(_TOKENS) + text[at:]
        elif kind == 2:
            text = _replace_one(text, _NUMBER, lambda m: rng.choice(_WEIRD_NUMBERS), rng)
        elif kind == 3:
            name = rng.choice(_IDENT.findall(text) or ["x"])
            text = _replace_one(text, _IDENT, lambda m, name=name: name, rng)
        elif kind in (4, 5, 6):
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            if kind == 4:
                del lines[i]
            elif kind == 5:
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        else:
            text = text[:at]
    return text


def _replace_one(text: str, pattern: re.Pattern, make, rng: random.Random) -> str:
    matches = list(pattern.finditer(text))
    if not matches:
        return text
    m = rng.choice(matches)
    return text[: m.start()] + make(m) + text[m.end() :]


def fuzz_parser(seed: int = 0, count: int = 10_000, report=print) -> Counter:
    """Counts of ``accepted``, ``refused`` (IRParseError with file:line:column) and
    ``escaped`` (any other exception, reported with where it came from)."""
    rng = random.Random(seed)
    texts = seed_texts()
    counts: Counter = Counter()
    for i in range(count):
        text = mutate(rng.choice(texts), rng)
        try:
            parse_graph(text, source="mutant.kir")
        except IRParseError as e:
            located = re.match(r"mutant\.kir:\d+:\d+: ", str(e)) is not None
            counts["refused" if located else "escaped"] += 1
            if not located:
                report(f"mutant {i}: IRParseError without a location: {e}")
            continue
        except Exception as e:
            counts["escaped"] += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            report(f"mutant {i}: {type(e).__name__}: {e} (at {where.filename}:{where.lineno})")
            continue
        counts["accepted"] += 1
    return counts
