"""Keras's own docstring examples as a parity oracle (issue 26): every code example in the
docstrings of Keras 3.15's public API, run on real Keras and on kcompile, values compared.

    python benchmarks/keras_docstring_examples.py [--keras-python /work/kenv/bin/python]
        [--timeout 60] [--jobs 1] [--only ID_PART] [--only-kcompile] [--update-guard]
        [--refresh-keras | --rerun-keras-failures] [--report benchmarks/DOCSTRING_EXAMPLES.md]
    python benchmarks/keras_docstring_examples.py --show ID_PART   # one example, side by side

The usual rerun while kcompile's API grows: ``--only-kcompile`` (about a minute; no Keras
needed), then ``--only-kcompile --update-guard`` to guard the examples that now agree.

What an example is. The public namespaces are walked as
``/work/shared/tools/keras_api_coverage.py`` walks them (``keras``, ``keras.layers``,
``keras.ops``, ...); the ``__doc__`` of every public object, and of the public methods and
properties of every public class, is read once (a docstring exported under several names is
taken under the first). Each docstring gives at most one *doctest* example, all its ``>>>``
lines in one namespace (as ``doctest`` runs them; a ``>>>`` line whose expected output is a
traceback must raise), and one *block* example per fenced ```python block of an example
section (a section headed ``Example:``, ``Examples:``, ``Usage...:``, ``Standalone usage:``,
``... `compile()` API:``; the blocks of ``Formula:`` or ``Update rule:`` sections are
pseudo-code and are left out). Ids are the public name plus ``:doctest`` or ``:blockN``.

How one runs. Each side runs every example in a fresh namespace holding ``keras`` (real
Keras, or ``kcompile`` on kcompile's side: the example's ``keras.`` names resolve to
kcompile, and an example's own ``import keras`` / ``from keras.X import`` lines are
rewritten as ``benchmarks/keras_corpus.py`` rewrites a program's; Keras's private
``keras.src.X``, which three docstrings import, becomes ``kcompile.X``), ``np``, ``numpy``,
and ``layers`` and ``ops`` (``keras.layers``, ``keras.ops``: the import many of Keras's
examples take for granted; 12 more examples run on Keras with them). Before each example:
the session is cleared, global settings (floatx, epsilon, image data format, dtype policy)
are put back to Keras's defaults, and every seed is set
(``keras.utils.set_random_seed(0)``, NumPy's and Python's global seeds to 0). Statements run
one by one, continuing after a failure: a ``>>>`` line's value (when it is an expression
and not None) and its printed output are recorded; a block's top-level statements run the
same way and the final values of the names it bound are recorded. A side's examples run in
one subprocess (``KERAS_BACKEND=jax`` and the Keras venv for Keras; this python with the
checkout on ``PYTHONPATH`` for kcompile), restarted after the example that timed out or
killed it, and after ``keras.config.set_backend()``, which reloads Keras's modules.

What is compared, and what is deterministic. A value is encoded as data: an array (or a
tensor, variable or NumPy scalar) by dtype, shape and its numbers (6 significant digits; an
array of more than 64 elements by its first 16 numbers and its sum, absolute sum, minimum
and maximum), a symbolic tensor by shape and dtype, Python numbers, strings, None, and
sequences and dicts of these; any other object by its type name only (not compared).
Keras runs every example three times: seed 0 (the record); seed 1
(``keras.utils.set_random_seed(1)``, Python's ``random`` at 1; NumPy's global seed stays 0,
so an example's ``np.random`` data is the same input on every run and on kcompile); and
seed 0 again with JAX's other threefry bit stream (``JAX_THREEFRY_PARTITIONABLE`` flipped),
which changes every number JAX's generator draws, seeded or not, and nothing else. A value
(each leaf of a structure) counts as *deterministic* when the three runs agree on it (to
the comparison's tolerance; a run that fails that statement does not vote). Initializers,
``keras.random`` ops (even with a fixed seed: kcompile's generator is not JAX's), dropout
and the shuffling of ``fit`` make values random: for those kcompile's value is checked for
kind, shape and dtype only. Printed output is compared by the numbers in it, when it is
deterministic. Tolerance: ``rtol=1e-4, atol=1e-5`` for float32 (1e-2/1e-3 for 16-bit
floats); integers, booleans, strings and dtypes exactly. An example *agrees* when every
statement that ran on Keras runs on kcompile (a statement Keras raises on must raise on
kcompile too) with equal values, printed numbers and bound names. One exception, listed
apart in the report: where Keras 3.15.1's own value contradicts the output its docstring
shows (its metrics on integer lists, for one) and kcompile's value is the documented one,
the statement agrees.

Outputs. ``tests/keras_fixtures/docstring_examples.json``: every example with its source
and Keras's record (outcome, values, the random marks); ``--only-kcompile`` reruns only
kcompile against it (no Keras needed; cheap while the API grows). The examples that agree
are the regression guard ``tests/keras_fixtures/docstring_examples_agree.txt`` (rewritten
only with ``--update-guard``; ``tests/test_docstring_examples.py`` asserts they keep
agreeing). The report: ``benchmarks/DOCSTRING_EXAMPLES.md``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import doctest
import io
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import types
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "keras_fixtures" / "docstring_examples.json"
GUARD = REPO / "tests" / "keras_fixtures" / "docstring_examples_agree.txt"
REPORT = REPO / "benchmarks" / "DOCSTRING_EXAMPLES.md"
RUNNER_VERSION = "3"
SEED = 0
OTHER_SEED = 1
SLOW_SECONDS = 1.0  # an agreeing example slower than this on kcompile is guarded by a slow test
ARRAY_IN_FULL = 64  # arrays up to this many numbers are recorded whole
STDOUT_LIMIT = 2000

NAMESPACES = [
    "", "layers", "ops", "ops.nn", "ops.numpy", "ops.image", "ops.linalg", "ops.core",
    "losses", "metrics", "optimizers", "optimizers.schedules", "callbacks", "activations",
    "initializers", "regularizers", "constraints", "utils", "saving", "models", "random",
    "config", "mixed_precision", "quantizers", "backend", "tree", "distribution",
    "applications", "preprocessing", "export", "dtype_policies",
]  # fmt: skip

# Section headers whose fenced blocks are examples (not formulas or pseudo-code).
EXAMPLE_SECTION = re.compile(
    r"^(examples?\b.*|.*\busage\b.*|.*`compile\(\)` api|for example)\s*:$", re.IGNORECASE
)
SECTION_HEADER = re.compile(r"^[A-Z][\w `()\-,/'\".]*:$")


# --------------------------------------------------------------------------------------
# Extraction (Keras's python).
# --------------------------------------------------------------------------------------


def _public_docstrings(keras: Any) -> list[tuple[str, str]]:
    """(public name, docstring), each docstring once, under the first name that has it."""
    seen: dict[str, str] = {}

    def take(name: str, obj: Any) -> None:
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str) and doc.strip() and doc not in seen:
            seen[doc] = name

    for namespace in NAMESPACES:
        module = keras
        try:
            for part in [p for p in namespace.split(".") if p]:
                module = getattr(module, part)
        except AttributeError:
            continue
        prefix = "keras." + (namespace + "." if namespace else "")
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            obj = getattr(module, attr, None)
            if isinstance(obj, types.ModuleType):
                continue
            take(prefix + attr, obj)
            if isinstance(obj, type):
                for member in sorted(dir(obj)):
                    if member.startswith("_"):
                        continue
                    try:
                        value = obj.__dict__.get(member, None) or getattr(obj, member)
                    except Exception:  # a class attribute that raises: no doc
                        continue
                    if isinstance(value, property):
                        value = value.fget
                    take(f"{prefix}{attr}.{member}", value)
    return [(name, doc) for doc, name in seen.items()]


def _doctest_statements(doc: str) -> tuple[list[str], list[int], list[str]]:
    """The ``>>>`` sources of a docstring, the indices of those that must raise, and the
    output each one's docstring shows."""
    sources, raises, wants = [], [], []
    try:
        examples = doctest.DocTestParser().get_examples(doc)
    except ValueError:  # indentation doctest refuses (a ``>>>`` inside a nested block)
        return _doctest_statements_by_line(doc)
    for example in examples:
        if example.options.get(doctest.SKIP):
            continue
        if example.exc_msg is not None:
            raises.append(len(sources))
        sources.append(example.source.rstrip("\n"))
        wants.append(example.want.rstrip("\n"))
    return sources, raises, wants


def _doctest_statements_by_line(doc: str) -> tuple[list[str], list[int], list[str]]:
    """The same, reading stripped lines: ``>>>`` starts a source, ``...`` continues it, the
    lines up to a blank line are its output."""
    sources: list[list[str]] = []
    wants: list[list[str]] = []
    raises: list[int] = []
    state = "text"  # or "source" or "want"
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == ">>>" or stripped.startswith(">>> "):
            sources.append([stripped[4:]])
            wants.append([])
            state = "source"
        elif state == "source" and (stripped == "..." or stripped.startswith("... ")):
            sources[-1].append(stripped[4:])
        elif state != "text" and stripped:
            if state == "source" and stripped.startswith("Traceback (most recent call last)"):
                raises.append(len(sources) - 1)
            wants[-1].append(stripped)
            state = "want"
        else:
            state = "text"
    return (
        [textwrap.dedent("\n".join(s)) for s in sources],
        raises,
        ["\n".join(w) for w in wants],
    )


def _fenced_blocks(doc: str) -> list[str]:
    """The ```python blocks of a docstring's example sections (not those holding ``>>>``)."""
    lines = textwrap.dedent("\n".join(doc.splitlines()[1:])).splitlines()
    blocks, section, i = [], "", 0
    while i < len(lines):
        stripped = lines[i].strip()
        indent = len(lines[i]) - len(lines[i].lstrip())
        if indent == 0 and SECTION_HEADER.match(stripped) and len(stripped) <= 60:
            section = stripped
        if stripped.startswith("```") and stripped[3:].strip() in ("python", "py", "python3"):
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            source = textwrap.dedent("\n".join(body)).strip("\n")
            if EXAMPLE_SECTION.match(section) and ">>>" not in source and source.strip():
                blocks.append(source)
        i += 1
    return blocks


def extract_examples(keras: Any) -> list[dict[str, Any]]:
    """Every example of Keras's public docstrings, in a stable order."""
    examples = []
    for name, doc in sorted(_public_docstrings(keras)):
        sources, raises, wants = _doctest_statements(doc)
        if sources:
            examples.append(
                {
                    "id": f"{name}:doctest",
                    "kind": "doctest",
                    "statements": sources,
                    "raises": raises,
                    "wants": wants,
                }
            )
        for number, block in enumerate(_fenced_blocks(doc), 1):
            examples.append({"id": f"{name}:block{number}", "kind": "block", "source": block})
    return examples


# --------------------------------------------------------------------------------------
# Running one example (either side, in a child or in the test's process): stdlib + numpy.
# --------------------------------------------------------------------------------------


def _round(x: float) -> float | str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return float(f"{x:.6g}")


def _array_record(array: Any) -> dict[str, Any]:
    import numpy as np

    dtype = str(array.dtype)
    data = np.asarray(array)
    if data.dtype.kind == "c":
        data = np.abs(data)
    elif data.dtype.kind not in "biuf":  # bfloat16 and other ml_dtypes, strings, objects
        try:
            data = data.astype(np.float64)
        except (TypeError, ValueError):
            return {
                "t": "array",
                "dtype": dtype,
                "shape": list(data.shape),
                "text": str(data)[:200],
            }
    flat = data.reshape(-1)
    kind = data.dtype.kind

    def numbers(values: Any) -> list[Any]:
        if kind == "f":
            return [_round(float(v)) for v in values]
        return [int(v) for v in values]

    record: dict[str, Any] = {"t": "array", "dtype": dtype, "shape": list(data.shape)}
    if flat.size <= ARRAY_IN_FULL:
        record["data"] = numbers(flat)
    else:
        as_float = flat.astype(np.float64)
        finite = as_float[np.isfinite(as_float)]
        record["head"] = numbers(flat[:16])
        record["stats"] = [
            _round(float(finite.sum())),
            _round(float(np.abs(finite).sum())),
            _round(float(as_float.min())),
            _round(float(as_float.max())),
        ]
    return record


def encode(value: Any, depth: int = 0) -> Any:
    """A value as JSON data to compare (see the module's docstring)."""
    import numpy as np

    if value is None:
        return {"t": "none"}
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        number: Any = _round(value) if isinstance(value, float) else int(value)
        return {"t": "num", "type": type(value).__name__, "v": number}
    if isinstance(value, str):
        return {"t": "str", "v": value[:500]}
    if isinstance(value, np.dtype):
        return {"t": "str", "v": str(value)}
    if isinstance(value, (np.generic, np.ndarray)):
        return _array_record(value)
    if depth < 4 and isinstance(value, (list, tuple)):
        items = [encode(v, depth + 1) for v in value[:50]]
        return {"t": "seq", "type": type(value).__name__, "n": len(value), "items": items}
    if depth < 4 and isinstance(value, dict):
        keys = list(value)[:50]
        return {"t": "dict", "items": {str(k): encode(value[k], depth + 1) for k in keys}}
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(value, type):
        try:
            array = np.asarray(value)
            if array.dtype == object:  # a symbolic tensor numpy wrapped as an object
                raise TypeError("not an array")
            return _array_record(array)
        except Exception:  # symbolic tensors refuse to become arrays
            with contextlib.suppress(Exception):
                return {
                    "t": "symbolic",
                    "shape": [None if d is None else int(d) for d in shape],
                    "dtype": str(getattr(dtype, "name", dtype)),
                }
    return {"t": "object", "type": type(value).__name__}


def _kcompile_module(module: str) -> str:
    """keras.X -> kcompile.X; Keras's private ``keras.src.X`` (a few docstrings import
    ``from keras.src import ops``) -> kcompile.X, where kcompile keeps the public X."""
    rest = module[len("keras") :]
    if rest == ".src" or rest.startswith(".src."):
        rest = rest[len(".src") :]
    return "kcompile" + rest


class _KerasImportRewriter(ast.NodeTransformer):
    """``import keras`` -> ``import kcompile as keras``; ``from keras.X import`` -> ``from
    kcompile.X import`` (as benchmarks/keras_corpus.py rewrites a program)."""

    def visit_Import(self, node: ast.Import) -> ast.AST:
        names, bind_keras = [], False
        for alias in node.names:
            head, _, rest = alias.name.partition(".")
            if head != "keras":
                names.append(alias)
                continue
            target = _kcompile_module(alias.name)
            if alias.asname:
                names.append(ast.alias(target, alias.asname))
            elif not rest:
                names.append(ast.alias("kcompile", "keras"))
            else:
                names.append(ast.alias(target))
                bind_keras = True
        if bind_keras:
            names.append(ast.alias("kcompile", "keras"))
        return ast.copy_location(ast.Import(names=names), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        module = node.module or ""
        if node.level == 0 and (module == "keras" or module.startswith("keras.")):
            node.module = _kcompile_module(module)
        return node


def _settings(framework: Any) -> None:
    """Keras's default global settings, put back before every example."""
    config = framework.config
    for setter, value in (
        ("set_floatx", "float32"),
        ("set_epsilon", 1e-7),
        ("set_image_data_format", "channels_last"),
        ("set_dtype_policy", "float32"),
    ):
        with contextlib.suppress(Exception):
            getattr(config, setter)(value)


def prepare(framework: Any, seed: int = SEED) -> None:
    """Clear the session, default settings, every seed (NumPy's global one always SEED)."""
    import numpy as np

    with contextlib.suppress(Exception):
        framework.backend.clear_session()
    _settings(framework)
    framework.utils.set_random_seed(seed)
    random.seed(seed)
    np.random.seed(SEED)


def _error(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}"


def _parse(source: str, kcompile_side: bool) -> ast.Module:
    tree = ast.parse(source)
    if kcompile_side:
        tree = ast.fix_missing_locations(_KerasImportRewriter().visit(tree))
    return tree


def _run_statement(
    source: str | ast.stmt, namespace: dict[str, Any], kcompile_side: bool, want_value: bool
) -> dict[str, Any]:
    """Run one statement (a ``>>>`` source or a block's top-level statement)."""
    out = io.StringIO()
    record: dict[str, Any] = {"ok": True}
    try:
        with contextlib.redirect_stdout(out):
            tree = (
                ast.Module(body=[source], type_ignores=[])
                if isinstance(source, ast.stmt)
                else _parse(source, kcompile_side)
            )
            last = tree.body[-1] if tree.body else None
            if want_value and isinstance(last, ast.Expr):
                head = ast.Module(body=tree.body[:-1], type_ignores=[])
                exec(compile(head, "<example>", "exec"), namespace)
                value = eval(compile(ast.Expression(last.value), "<example>", "eval"), namespace)
                if value is not None:
                    record["value"] = encode(value)
            else:
                exec(compile(tree, "<example>", "exec"), namespace)
    except BaseException as exc:  # a statement's failure is a result (SystemExit too)
        if isinstance(exc, KeyboardInterrupt):
            raise
        record = {"ok": False, "error": _error(exc)}
    text = out.getvalue()
    if text:
        record["stdout"] = text[:STDOUT_LIMIT]
    return record


def _block_statements(source: str, kcompile_side: bool) -> list[ast.stmt] | str:
    try:
        return list(_parse(source, kcompile_side).body)
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"


def run_example(
    framework: Any, example: dict[str, Any], seed: int = SEED, kcompile_side: bool = False
) -> dict[str, Any]:
    """One example's record: each statement's outcome, value and output; a block's names."""
    import numpy as np

    prepare(framework, seed)
    namespace: dict[str, Any] = {
        "__name__": "__example__",
        "__builtins__": __builtins__,
        "keras": framework,
        "np": np,
        "numpy": np,
        # The imports Keras's examples take for granted (``from keras import layers, ops``).
        "layers": framework.layers,
        "ops": framework.ops,
    }
    given = dict(namespace)
    start = time.perf_counter()
    statements: list[dict[str, Any]] = []
    result: dict[str, Any] = {"statements": statements}
    if example["kind"] == "doctest":
        for source in example["statements"]:
            statements.append(_run_statement(source, namespace, kcompile_side, True))
    else:
        body = _block_statements(example["source"], kcompile_side)
        if isinstance(body, str):
            statements.append({"ok": False, "error": body})
        else:
            for stmt in body:
                statements.append(_run_statement(stmt, namespace, kcompile_side, False))
            result["names"] = {
                name: encode(value)
                for name, value in namespace.items()
                if not name.startswith("_")
                and value is not given.get(name)
                and not isinstance(value, (types.ModuleType, type, types.FunctionType))
            }
    result["seconds"] = round(time.perf_counter() - start, 3)
    with contextlib.suppress(Exception):
        _settings(framework)
    return result


# --------------------------------------------------------------------------------------
# Comparing.
# --------------------------------------------------------------------------------------

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|\bnan\b|[-+]?\binf\b")


def _tolerance(dtype: str | None) -> tuple[float, float]:
    if dtype in ("float16", "bfloat16"):
        return 1e-2, 1e-3
    return 1e-4, 1e-5


def _as_float(x: Any) -> float:
    return float(x)  # numbers, and the strings "nan", "inf", "-inf" _round writes


def _numbers_close(a: list[Any], b: list[Any], dtype: str | None) -> bool:
    import numpy as np

    if len(a) != len(b):
        return False
    rtol, atol = _tolerance(dtype)
    if dtype is not None and re.match(r"u?int|bool", dtype):
        rtol = atol = 0.0  # integers and booleans exactly
    x = np.array([_as_float(v) for v in a], dtype=np.float64)
    y = np.array([_as_float(v) for v in b], dtype=np.float64)
    return bool(np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True))


def _stats_close(a: list[Any], b: list[Any], n: int, dtype: str | None) -> bool:
    import numpy as np

    rtol, atol = _tolerance(dtype)
    x = np.array([_as_float(v) for v in a])
    y = np.array([_as_float(v) for v in b])
    scale = max(abs(x[1]), 1.0) if np.isfinite(x[1]) else 1.0  # the absolute sum bounds the sums
    close_sums = np.allclose(x[:2], y[:2], rtol=rtol * 10, atol=atol * n + rtol * scale * 1e-2)
    return bool(close_sums and np.allclose(x[2:], y[2:], rtol=rtol, atol=atol, equal_nan=True))


def _shape(record: dict[str, Any]) -> Any:
    return record.get("shape")


def diff(keras: Any, other: Any, structure_only: bool = False, where: str = "") -> list[str]:
    """Where ``other`` differs from Keras's ``keras`` record (empty when they agree). Leaves
    marked ``random`` (or everything, with ``structure_only``) compare kind, shape, dtype."""
    loose = structure_only or keras.get("random", False)
    kt, ot = keras["t"], other["t"]
    numeric = ("num", "array")
    if kt == "object":
        return []  # not compared: no data to compare
    if kt == "symbolic" or (ot == "symbolic" and kt == "array"):
        if ot not in ("symbolic", "array") or keras.get("shape") != other.get("shape"):
            return [f"{where or 'value'}: {_brief(keras)} vs {_brief(other)}"]
        if keras.get("dtype") != other.get("dtype"):
            return [f"{where or 'value'}: dtype {keras.get('dtype')} vs {other.get('dtype')}"]
        return []
    if kt in numeric and ot in numeric:
        return _diff_numbers(keras, other, loose, where)
    if kt != ot:
        return [f"{where or 'value'}: {_brief(keras)} vs {_brief(other)}"]
    if kt == "str":
        same = loose or keras["v"] == other["v"]
        return [] if same else [f"{where or 'value'}: {keras['v']!r} vs {other['v']!r}"]
    if kt == "seq":
        if keras["n"] != other["n"]:
            return [f"{where or 'value'}: length {keras['n']} vs {other['n']}"]
        out = []
        for i, (a, b) in enumerate(zip(keras["items"], other["items"])):
            out += diff(a, b, loose, f"{where}[{i}]")
        return out
    if kt == "dict":
        if set(keras["items"]) != set(other["items"]):
            return [
                f"{where or 'value'}: keys {sorted(keras['items'])} vs {sorted(other['items'])}"
            ]
        out = []
        for k, a in keras["items"].items():
            out += diff(a, other["items"][k], loose, f"{where}[{k!r}]")
        return out
    return []


def _diff_numbers(keras: Any, other: Any, loose: bool, where: str) -> list[str]:
    label = where or "value"
    k_shape = keras.get("shape", [])
    o_shape = other.get("shape", [])
    if keras["t"] == "array" and other["t"] == "array":
        if k_shape != o_shape:
            return [f"{label}: shape {tuple(k_shape)} vs {tuple(o_shape)}"]
        if keras["dtype"] != other["dtype"]:
            return [f"{label}: dtype {keras['dtype']} vs {other['dtype']}"]
    elif k_shape != o_shape:  # a Python number against an array: only a 0-d one
        return [f"{label}: {_brief(keras)} vs {_brief(other)}"]
    if loose:
        return []
    dtype = keras.get("dtype") or ("int" if keras.get("type") in ("int", "bool") else None)
    if "data" in keras or keras["t"] == "num":
        a = keras["data"] if "data" in keras else [keras["v"]]
        b = other["data"] if "data" in other else [other.get("v")]
        if "data" not in other and other["t"] == "array":
            return [f"{label}: {_brief(keras)} vs {_brief(other)}"]
        if not _numbers_close(a, b, dtype):
            return [f"{label}: {_brief(keras)} vs {_brief(other)}"]
        return []
    if "text" in keras or "text" in other:
        return [] if keras.get("text") == other.get("text") else [f"{label}: text differs"]
    n = 1
    for d in k_shape:
        n *= d
    if not _numbers_close(keras["head"], other["head"], dtype) or not _stats_close(
        keras["stats"], other["stats"], n, dtype
    ):
        return [f"{label}: {_brief(keras)} vs {_brief(other)}"]
    return []


def _brief(record: dict[str, Any]) -> str:
    t = record["t"]
    if t == "num":
        return repr(record["v"])
    if t == "array":
        numbers = record.get("data", record.get("head", []))
        shown = ", ".join(str(v) for v in numbers[:6]) + (", …" if len(numbers) > 6 else "")
        return f"{record['dtype']}{tuple(record['shape'])} [{shown}]"
    if t == "symbolic":
        return f"symbolic {record['dtype']}{tuple(record['shape'])}"
    if t == "str":
        return repr(record["v"][:60])
    if t == "seq":
        return f"{record['type']} of {record['n']}"
    if t == "object":
        return f"<{record['type']}>"
    return t


def stdout_numbers(text: str) -> list[str]:
    return NUMBER.findall(text or "")


def _same_stdout(a: str | None, b: str | None) -> bool:
    if (a or "") == (b or ""):
        return True
    x, y = stdout_numbers(a or ""), stdout_numbers(b or "")
    try:
        return _numbers_close(x, y, None)
    except ValueError:
        return False


def mark_random(record: Any, others: list[Any]) -> Any:
    """Keras's record with ``random: true`` on every leaf another run disagrees on."""
    if not others:
        return record
    t = record["t"]
    if any(o["t"] != t and {o["t"], t} != {"num", "array"} for o in others):
        return {**record, "random": True}
    if t == "seq":
        if any(o["n"] != record["n"] for o in others):
            return {**record, "random": True}
        items = [
            mark_random(item, [o["items"][i] for o in others])
            for i, item in enumerate(record["items"])
        ]
        return {**record, "items": items}
    if t == "dict":
        if any(set(o["items"]) != set(record["items"]) for o in others):
            return {**record, "random": True}
        items = {
            k: mark_random(v, [o["items"][k] for o in others]) for k, v in record["items"].items()
        }
        return {**record, "items": items}
    if any(diff(record, o) for o in others):
        return {**record, "random": True}
    return record


def mark_runs(first: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """Keras's first run with what the other runs (other seed, other random bits) disagree on."""
    marked = dict(first)
    statements = []
    for i, stmt in enumerate(first["statements"]):
        stmt = dict(stmt)
        peers = [o["statements"][i] for o in others if i < len(o["statements"])]
        peers = [p for p in peers if p.get("ok") == stmt.get("ok")]
        if "value" in stmt:
            stmt["value"] = mark_random(stmt["value"], [p["value"] for p in peers if "value" in p])
            if any("value" not in p for p in peers):
                stmt["value"] = {**stmt["value"], "random": True}
        if "stdout" in stmt and any(
            not _same_stdout(stmt["stdout"], p.get("stdout")) for p in peers
        ):
            stmt["stdout_random"] = True
        statements.append(stmt)
    marked["statements"] = statements
    if "names" in first:
        names = {}
        for name, value in first["names"].items():
            peers = [o["names"][name] for o in others if name in o.get("names", {})]
            names[name] = mark_random(value, peers)
        marked["names"] = names
    return marked


def keras_ran(example: dict[str, Any], record: dict[str, Any]) -> bool:
    """Keras ran every statement (a ``>>>`` line that must raise raised)."""
    raises = set(example.get("raises", []))
    statements = record.get("statements", [])
    if record.get("status") in ("timeout", "crash") or not statements:
        return False
    return all(s["ok"] != (i in raises) for i, s in enumerate(statements))


def compare(example: dict[str, Any], keras: dict[str, Any], kc: dict[str, Any]) -> dict[str, Any]:
    """kcompile's run of an example Keras ran: ``{"status": "agree"}`` or the first cause."""
    if kc.get("status") in ("timeout", "crash"):
        return {"status": kc["status"], "cause": kc.get("error", kc["status"]), "at": None}
    raises = set(example.get("raises", []))
    wants = example.get("wants")
    mismatches: list[tuple[int | None, str]] = []
    documented: list[tuple[int, str]] = []
    for i, (k, c) in enumerate(zip(keras["statements"], kc["statements"])):
        if i in raises:
            if c["ok"]:
                mismatches.append(
                    (i, f"statement {i + 1}: Keras raises ({k['error']}), kcompile does not")
                )
            continue
        if not c["ok"]:
            status = failure_kind(c["error"])
            return {"status": status, "cause": c["error"], "at": i}
        found = []
        if "value" in k:
            if "value" not in c:
                found.append(f"statement {i + 1}: {_brief(k['value'])} vs None")
            else:
                found += diff(k["value"], c["value"], where=f"statement {i + 1}")
        elif "value" in c:
            found.append(f"statement {i + 1}: None vs {_brief(c['value'])}")
        if (
            found
            and wants
            and i < len(wants)
            and matches_docstring(wants[i], c)
            and not matches_docstring(wants[i], k)
        ):
            documented.append((i, found[0]))  # Keras's value contradicts its docstring
            continue
        mismatches += [(i, d) for d in found]
        if not k.get("stdout_random") and not _same_stdout(k.get("stdout"), c.get("stdout")):
            mismatches.append(
                (
                    i,
                    f"statement {i + 1}: printed {_clip(k.get('stdout'))} "
                    f"vs {_clip(c.get('stdout'))}",
                )
            )
    if len(kc["statements"]) < len(keras["statements"]):
        return {"status": "error", "cause": "kcompile stopped early", "at": len(kc["statements"])}
    for name, value in keras.get("names", {}).items():
        other = kc.get("names", {}).get(name)
        if other is None:
            mismatches.append((None, f"name {name}: not bound"))
        else:
            mismatches += [(None, d) for d in diff(value, other, where=f"name {name}")]
    if mismatches:
        return {
            "status": "mismatch",
            "cause": mismatches[0][1],
            "at": mismatches[0][0],
            "all": [m[1] for m in mismatches[:10]],
        }
    if documented:  # statement numbers, from 1
        return {
            "status": "agree",
            "documented": [f"{d} (Keras's value first)" for _, d in documented],
        }
    return {"status": "agree"}


def _value_numbers(record: Any) -> list[Any] | None:
    """The numbers a value's repr shows, in order (None when they are not all recorded)."""
    t = record["t"]
    if t == "none":
        return []  # a repr shows None, not a number
    if t == "num":
        return [record["v"]]
    if t == "array":
        return record.get("data")
    if t == "symbolic":
        return [d for d in record["shape"] if d is not None]
    if t == "seq":
        out: list[Any] = []
        for item in record["items"]:
            numbers = _value_numbers(item)
            if numbers is None or item["t"] in ("str", "object"):
                return None
            out += numbers
        return out if record["n"] == len(record["items"]) else None
    return None


def matches_docstring(want: str, statement: dict[str, Any]) -> bool:
    """kcompile's statement shows what the docstring shows: nothing for nothing, the same
    string, or the same numbers (6 significant digits; the docstring rounds)."""
    value = statement.get("value")
    shown = (statement.get("stdout") or "").strip()
    if not want.strip():
        return value is None and not shown
    if value is not None and value["t"] == "str" and not shown:
        return want.strip().strip("'\"") == value["v"]
    expected = stdout_numbers(re.sub(r"dtype=\w+|float\d+|int\d+", "", want))
    got = stdout_numbers(shown)
    if value is not None:
        numbers = _value_numbers(value)
        if numbers is None:
            return False
        got += [str(v) for v in numbers]
    try:
        return bool(expected) and _numbers_close(expected, got, "float16")
    except ValueError:
        return False


def _clip(text: str | None, limit: int = 60) -> str:
    text = (text or "").strip().replace("\n", "⏎")
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def failure_kind(error: str) -> str:
    """``missing name`` (kcompile lacks the name, or refuses it as not offered), ``refused``
    (a NotImplementedError: kcompile knowingly does not support this use) or ``error``."""
    if re.match(r"(ImportError|ModuleNotFoundError|NameError): ", error):
        return "missing name"
    if re.match(r"AttributeError: (module|type object) '[\w.]+' has no attribute", error):
        return "missing name"
    if re.match(r"AttributeError: '[A-Z]\w*' object has no attribute", error):
        return "missing name"  # a method or property of one of kcompile's classes
    if error.startswith("NotImplementedError"):
        return "missing name" if "not offered" in error else "refused"
    return "error"


# --------------------------------------------------------------------------------------
# The child: run a list of examples on one side, one JSON line per example.
# --------------------------------------------------------------------------------------


def _child(side: str, examples_path: str, out_path: str, start: int, seed: int) -> None:
    examples = json.loads(Path(examples_path).read_text())
    if side == "kcompile":
        import kcompile as framework
    else:
        import keras as framework
    with open(out_path, "a", buffering=1) as log:
        for index in range(start, len(examples)):
            log.write(json.dumps({"event": "start", "index": index}) + "\n")
            log.flush()
            record = run_example(framework, examples[index], seed, side == "kcompile")
            log.write(json.dumps({"event": "end", "index": index, "record": record}) + "\n")
            log.flush()
            if sys.modules.get(framework.__name__) is not framework:
                # keras.config.set_backend() reloads Keras's modules: the objects an example
                # makes no longer match the classes the next one checks against. A new
                # process (the parent starts one at the next example) is a clean Keras.
                os._exit(0)
        log.write(json.dumps({"event": "done"}) + "\n")
    os._exit(0)  # skip interpreter teardown (JAX's threads, compiled libraries)


def _child_env(side: str, root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KERAS_BACKEND": "jax",
            "JAX_PLATFORMS": "cpu",
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONHASHSEED": "0",
            "PYTHONPATH": str(root) if side == "kcompile" else "",
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_side(
    side: str,
    python: str,
    examples: list[dict[str, Any]],
    timeout: float,
    seed: int = SEED,
    root: Path = REPO,
    label: str = "",
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every example's record on one side; a child is restarted after a timeout or a crash."""
    records: list[dict[str, Any] | None] = [None] * len(examples)
    with tempfile.TemporaryDirectory(prefix=f"docstring_{side}_") as work:
        examples_path = Path(work) / "examples.json"
        examples_path.write_text(json.dumps(examples))
        out = Path(work) / "records.jsonl"
        start = 0
        while start < len(examples):
            cmd = [
                python,
                str(Path(__file__).resolve()),
                "--_child",
                side,
                str(examples_path),
                str(out),
                str(start),
                str(seed),
            ]
            with open(Path(work) / "output.txt", "wb") as output:
                proc = subprocess.Popen(
                    cmd,
                    cwd=work,
                    env={**_child_env(side, root), **(env or {})},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                start, died = _follow(proc, out, records, timeout, start, label or side)
            tail = (Path(work) / "output.txt").read_bytes()[-400:].decode(errors="replace")
            if died and start < len(examples) and records[start] is None:
                last = (tail.strip().splitlines() or [""])[-1][:200]
                records[start] = {
                    "status": "crash",
                    "error": f"interpreter died: {last}",
                    "statements": [],
                }
                start += 1
            out.write_text("")
    return [r or {"status": "crash", "statements": []} for r in records]


def _follow(
    proc: subprocess.Popen, out: Path, records: list[Any], timeout: float, start: int, label: str
) -> tuple[int, bool]:
    """Read the child's records as they come; kill it at a timeout. Returns where to go on,
    and whether the child died there (during that example, or before its first one)."""
    running, since, read, ended = None, time.monotonic(), 0, False
    while True:
        done = proc.poll() is not None
        text = out.read_text() if out.exists() else ""
        lines = text.splitlines()
        complete = lines if text.endswith("\n") else lines[:-1]
        for line in complete[read:]:
            event = json.loads(line)
            if event["event"] == "start":
                running, since = event["index"], time.monotonic()
            elif event["event"] == "end":
                records[event["index"]] = {"status": "ran", **event["record"]}
                running, ended = None, True
                if (event["index"] + 1) % 50 == 0:
                    print(f"  {label}: {event['index'] + 1} examples", flush=True)
            elif event["event"] == "done":
                proc.wait()
                return len(records), False
        read = len(complete)
        if done:  # died in an example, or left after one (a fresh process goes on)
            if running is not None:
                return running, True
            return _next_missing(records, start), not ended
        if running is not None and time.monotonic() - since > timeout:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            records[running] = {
                "status": "timeout",
                "error": f"timeout after {timeout:.0f} s",
                "statements": [],
            }
            return running + 1, False
        time.sleep(0.1)


def _next_missing(records: list[Any], start: int) -> int:
    for i in range(start, len(records)):
        if records[i] is None:
            return i
    return len(records)


# --------------------------------------------------------------------------------------
# The parent: extract, run Keras (three times) and kcompile, write fixture, guard, report.
# --------------------------------------------------------------------------------------


def _extract_child(out_path: str) -> None:
    import keras

    Path(out_path).write_text(
        json.dumps({"keras": keras.__version__, "examples": extract_examples(keras)})
    )
    os._exit(0)


def _extract(python: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="docstring_extract_") as work:
        out = Path(work) / "examples.json"
        subprocess.run(
            [python, str(Path(__file__).resolve()), "--_extract", str(out)],
            env=_child_env("keras", REPO),
            cwd=work,
            check=True,
        )
        return json.loads(out.read_text())


def _source_key(example: dict[str, Any]) -> str:
    return json.dumps([example.get("statements"), example.get("raises"), example.get("source")])


def _keras_records(
    examples: list[dict[str, Any]], fixture: dict[str, Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Keras's marked record of each example: from the fixture when its source is unchanged."""
    known = {
        e["id"]: e for e in fixture.get("examples", []) if fixture.get("runner") == RUNNER_VERSION
    }
    records: list[dict[str, Any] | None] = []
    todo = []
    for example in examples:
        old = known.get(example["id"])
        rerun = args.refresh_keras or (
            args.rerun_keras_failures and old and not keras_ran(old, old["keras"])
        )
        if old and not rerun and _source_key(old) == _source_key(example):
            records.append(old["keras"])
        else:
            records.append(None)
            todo.append(example)
    if todo:
        print(f"Keras: {len(todo)} examples to run (3 runs)", flush=True)
        other_bits = {"JAX_THREEFRY_PARTITIONABLE": "false"}  # JAX 0.10's default is true
        settings = [(SEED, {}), (OTHER_SEED, {}), (SEED, other_bits)]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            runs = list(
                pool.map(
                    lambda s: run_side(
                        "keras",
                        args.keras_python,
                        todo,
                        args.timeout,
                        s[0],
                        env=s[1],
                        label=f"keras seed {s[0]}" + (" other bits" if s[1] else ""),
                    ),
                    settings,
                )
            )
        fresh = iter(_keras_record(a, [b, c]) for a, b, c in zip(*runs))
        records = [r if r is not None else next(fresh) for r in records]
    return records  # type: ignore[return-value]


def _keras_record(first: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    usable = [o for o in others if o.get("status") == "ran"]
    record = mark_runs(first, usable) if first.get("status") == "ran" else dict(first)
    record.pop("status", None)
    if first.get("status") in ("timeout", "crash"):
        record["status"] = first["status"]
    return record


def _write_fixture(path: Path, meta: dict[str, Any], examples: list[dict[str, Any]]) -> None:
    payload = {
        "about": "Keras's docstring examples and Keras's results, made by "
        "benchmarks/keras_docstring_examples.py (see its docstring for what is recorded)",
        "keras": meta["keras"],
        "backend": "jax",
        "runner": RUNNER_VERSION,
        "seed": SEED,
        "examples": examples,
    }
    path.write_text(json.dumps(payload, separators=(",", ":"), sort_keys=False) + "\n")


def load_fixture(path: Path = FIXTURE) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def read_guard(path: Path = GUARD) -> dict[str, bool]:
    """The guarded example ids, each with whether it is slow (``id  slow``)."""
    guard = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, *flags = line.split()
                guard[name] = "slow" in flags
    return guard


def _write_guard(path: Path, rows: list[dict[str, Any]]) -> None:
    lines = [
        "# Keras docstring examples that run on kcompile and agree with Keras",
        "# (written by benchmarks/keras_docstring_examples.py --update-guard);",
        "# tests/test_docstring_examples.py asserts they keep agreeing.",
        f"# 'slow': more than {SLOW_SECONDS:g} s on kcompile, checked by a test marked slow.",
    ]
    for row in rows:
        if row["compare"]["status"] == "agree":
            slow = row["kcompile_seconds"] > SLOW_SECONDS
            lines.append(row["id"] + ("  slow" if slow else ""))
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        _child(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]))
        return 0
    if argv[:1] == ["--_extract"]:
        _extract_child(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keras-python", default="/work/kenv/bin/python")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per example")
    parser.add_argument("--only", action="append", default=[], help="ids containing this")
    parser.add_argument(
        "--only-kcompile",
        action="store_true",
        help="run only kcompile, against Keras's results in the fixture",
    )
    parser.add_argument("--refresh-keras", action="store_true", help="rerun every Keras example")
    parser.add_argument(
        "--rerun-keras-failures",
        action="store_true",
        help="rerun the Keras examples the fixture records as failing on Keras",
    )
    parser.add_argument(
        "--update-guard",
        action="store_true",
        help="rewrite the guard list with the examples that agree now",
    )
    parser.add_argument("--jobs", type=int, default=1, help="Keras's three runs at once")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument(
        "--show",
        metavar="ID_PART",
        help="run the fixture's examples whose id contains this on kcompile, in this process, "
        "and print each statement with Keras's and kcompile's values",
    )
    args = parser.parse_args(argv)
    if args.show:
        return _show(args.show)

    fixture = load_fixture()
    if args.only_kcompile:
        if not fixture:
            parser.error(f"no fixture at {FIXTURE}: run once with Keras")
        meta_keras = fixture["keras"]
        examples = [{k: v for k, v in e.items() if k != "keras"} for e in fixture["examples"]]
        keras_records = [e["keras"] for e in fixture["examples"]]
    else:
        extracted = _extract(args.keras_python)
        meta_keras = extracted["keras"]
        examples = extracted["examples"]
        keras_records = None
    if args.only:
        keep = [i for i, e in enumerate(examples) if any(o in e["id"] for o in args.only)]
        examples = [examples[i] for i in keep]
        if keras_records is not None:
            keras_records = [keras_records[i] for i in keep]
    if keras_records is None:
        keras_records = _keras_records(examples, fixture, args)
        if not args.only:
            entries = [{**e, "keras": r} for e, r in zip(examples, keras_records)]
            _write_fixture(FIXTURE, {"keras": meta_keras}, entries)
            print(f"fixture: {FIXTURE} ({FIXTURE.stat().st_size // 1024} KiB)")
    ran = [i for i, (e, r) in enumerate(zip(examples, keras_records)) if keras_ran(e, r)]
    print(f"{len(ran)} of {len(examples)} examples run on Keras; running kcompile", flush=True)
    kc_records = run_side("kcompile", sys.executable, [examples[i] for i in ran], args.timeout)
    rows = []
    for i, kc in zip(ran, kc_records):
        result = compare(examples[i], keras_records[i], kc)
        rows.append(
            {
                "id": examples[i]["id"],
                "compare": result,
                "kcompile_seconds": kc.get("seconds", args.timeout),
            }
        )
    agree = sum(r["compare"]["status"] == "agree" for r in rows)
    print(f"{agree} of {len(ran)} agree on kcompile")
    guard = read_guard()
    broken = [r["id"] for r in rows if r["id"] in guard and r["compare"]["status"] != "agree"]
    new = [r["id"] for r in rows if r["id"] not in guard and r["compare"]["status"] == "agree"]
    if broken:
        print(f"guarded examples that no longer agree ({len(broken)}): {', '.join(broken)}")
    if new:
        print(f"{len(new)} agreeing examples not in the guard list (--update-guard adds them)")
    if args.only:
        return 0
    if args.update_guard:
        _write_guard(GUARD, rows)
        print(f"guard: {GUARD}")
    _write_report(args.report, examples, keras_records, rows, meta_keras, args)
    print(f"report: {args.report}")
    return 0


def _show(part: str) -> int:
    import kcompile

    for example in load_fixture()["examples"]:
        if part not in example["id"]:
            continue
        keras_record = example["keras"]
        record = run_example(kcompile, example, kcompile_side=True)
        print(f"== {example['id']}: {compare(example, keras_record, record)}")
        sources = example.get("statements") or [
            ast.get_source_segment(example["source"], s) or "?"
            for s in ast.parse(example["source"]).body
        ]
        for i, source in enumerate(sources):
            k = keras_record["statements"][i] if i < len(keras_record["statements"]) else {}
            c = record["statements"][i] if i < len(record["statements"]) else {}
            print(">>> " + source.replace("\n", "\n... "))
            for side, r in (("keras", k), ("kcompile", c)):
                shown = r.get("error") or (_brief(r["value"]) if "value" in r else "")
                if r.get("value", {}).get("random"):
                    shown += " (random)"
                if r.get("stdout"):
                    shown += f" printed {_clip(r['stdout'], 200)}"
                print(f"    {side:9s} {shown}")
        for name, value in keras_record.get("names", {}).items():
            other = record.get("names", {}).get(name)
            print(f"    {name}: {_brief(value)} vs {_brief(other) if other else None}")
    return 0


# --------------------------------------------------------------------------------------
# The report.
# --------------------------------------------------------------------------------------


def error_key(error: str) -> str:
    """Group errors that differ only by generated names, numbers and shapes."""
    key = re.sub(r"(/[\w.+-]+){2,}/?", "…", error)
    key = re.sub(r"'[A-Za-z]\w*_\d+'", "'…'", key)
    key = re.sub(r"(?<![\w.])\d+(?!\w)", "N", key)
    return key[:160]


def _cell(text: str, limit: int = 150) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _namespace_of(example_id: str) -> str:
    name = example_id.split(":")[0]
    parts = name.split(".")
    for depth in (3, 2):
        if ".".join(parts[1:depth]) in NAMESPACES and len(parts) > depth:
            return ".".join(parts[:depth])
    return "keras"


def _write_report(
    path: Path,
    examples: list[dict[str, Any]],
    keras_records: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    keras_version: str,
    args: argparse.Namespace,
) -> None:
    n = len(examples)
    kinds = Counter(e["kind"] for e in examples)
    ran_ids = {r["id"] for r in rows}
    keras_fail = Counter()
    for e, r in zip(examples, keras_records):
        if e["id"] in ran_ids:
            continue
        if r.get("status") in ("timeout", "crash"):
            keras_fail[r.get("error", r["status"])[:40]] += 1
            continue
        raises = set(e.get("raises", []))
        first = next(
            (s for i, s in enumerate(r["statements"]) if s["ok"] == (i in raises)), {"error": "?"}
        )
        keras_fail[error_key(first.get("error", "a statement that must raise did not"))] += 1
    status = Counter(r["compare"]["status"] for r in rows)
    documented = [r for r in rows if r["compare"].get("documented")]
    agree = status["agree"]
    values = compared = 0
    for e, r in zip(examples, keras_records):
        if e["id"] in ran_ids:
            for leaf in _leaves(
                [s.get("value") for s in r["statements"]] + list(r.get("names", {}).values())
            ):
                values += 1
                compared += not leaf.get("random", False)
    by_ns: dict[str, list[int]] = {}
    for r in rows:
        cell = by_ns.setdefault(_namespace_of(r["id"]), [0, 0])
        cell[0] += 1
        cell[1] += r["compare"]["status"] == "agree"
    dirty = _git("status", "--porcelain")
    lines = [
        "# Keras's docstring examples on kcompile",
        "",
        "Made by `python benchmarks/keras_docstring_examples.py` (issue 26): every code example "
        "in the docstrings of Keras's public API (the `>>>` examples of a docstring as one "
        "example, as `doctest` runs them, and each ```python block of an *Example(s)* / "
        "*Usage* section), run on real Keras (JAX backend) and on kcompile with the example's "
        "`keras.` names resolving to kcompile, then compared value by value. How examples are "
        "found, run and compared, and how a value is judged deterministic (Keras run with two "
        "seeds and with JAX's other random bit stream; only what all three agree on is "
        "compared by its "
        "numbers, the rest by kind, shape and dtype), is in the script's docstring. Keras's "
        "results are in `tests/keras_fixtures/docstring_examples.json`; "
        "`tests/test_docstring_examples.py` reruns kcompile against them without Keras and "
        "fails when an example of `tests/keras_fixtures/docstring_examples_agree.txt` stops "
        "agreeing. `--only-kcompile` reruns only kcompile.",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores (shared), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- kcompile commit: {_git('rev-parse', '--short', 'HEAD')}"
        + (f" with {len(dirty.splitlines())} uncommitted changes in the checkout" if dirty else ""),
        f"- Keras: {keras_version} (JAX backend), python `{args.keras_python}`",
        f"- Timeout per example and side: {args.timeout:g} s",
        "",
        "## Totals",
        "",
        f"- Examples found: **{n}** ({kinds['doctest']} docstrings' `>>>` examples, "
        f"{kinds['block']} ```python blocks).",
        f"- **{len(rows)} run on Keras** (every statement runs; a `>>>` line whose expected "
        f"output is a traceback raises). The other {n - len(rows)} fail on Keras itself "
        "(below: most blocks are fragments that use a `model` or data defined elsewhere, or "
        "need TensorFlow, which is not installed).",
        f"- **{agree} of these {len(rows)} run on kcompile and agree with Keras** "
        f"({agree / max(len(rows), 1):.0%}); "
        f"{status['missing name']} stop at a name kcompile lacks, {status['refused']} at a "
        f"use of a name kcompile refuses (NotImplementedError), {status['error']} at another "
        f"error, {status['mismatch']} run but give other values, "
        f"{status['timeout'] + status['crash']} time out or crash. Of the {agree} that agree, "
        f"{len(documented)} agree with Keras's docstring where Keras's own value contradicts "
        "it (below).",
        f"- Values recorded on Keras for these examples: {values}; {compared} compared by "
        f"their numbers, {values - compared} (random: initializers, `keras.random`, dropout, "
        "`fit`'s shuffling, progress bars' timings) by kind, shape and dtype only.",
        "",
        "## By namespace",
        "",
        "| namespace | run on Keras | agree on kcompile |",
        "| --- | --- | --- |",
    ]
    for ns, (ran_n, ok_n) in sorted(by_ns.items(), key=lambda kv: (-kv[1][0], kv[0])):
        lines.append(f"| {ns} | {ran_n} | {ok_n} |")
    for title, wanted, intro in (
        (
            "Missing names",
            ("missing name",),
            "The first statement that fails on kcompile fails because kcompile lacks the "
            "name (AttributeError, ImportError) or refuses it as not offered:",
        ),
        (
            "Refused uses",
            ("refused",),
            "The first failing statement raises NotImplementedError: kcompile has the name "
            "but refuses this use of it (an argument, a dtype, a data format):",
        ),
        (
            "Errors",
            ("error", "timeout", "crash"),
            "The first failing statement raises another "
            "error on kcompile (or the example times out):",
        ),
    ):
        groups: dict[str, list[str]] = {}
        for r in rows:
            if r["compare"]["status"] in wanted:
                groups.setdefault(error_key(r["compare"]["cause"]), []).append(r["id"])
        total = sum(len(v) for v in groups.values())
        lines += [
            "",
            f"## {title}: {total} examples",
            "",
            intro,
            "",
            "| # | examples | first error | examples it stops |",
            "| --- | --- | --- | --- |",
        ]
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        for rank, (key, ids) in enumerate(ranked, 1):
            shown = ", ".join(f"`{i}`" for i in ids[:4]) + (" …" if len(ids) > 4 else "")
            lines.append(f"| {rank} | {len(ids)} | {_cell(key, 200)} | {_cell(shown, 300)} |")
    mismatched = [r for r in rows if r["compare"]["status"] == "mismatch"]
    if documented:
        lines += [
            "",
            f"## Agreeing with the docstring, not with Keras: {len(documented)}",
            "",
            "kcompile's value differs from what Keras 3.15.1 computes but is what the "
            "docstring shows (and Keras's value is not): counted as agreeing.",
            "",
        ]
        for r in documented:
            lines.append(f"- `{r['id']}`: {'; '.join(r['compare']['documented'][:2])}")
    lines += [
        "",
        f"## Mismatches: {len(mismatched)} examples",
        "",
        "The example runs on kcompile but a value differs (Keras's value first):",
        "",
        "| example | first difference |",
        "| --- | --- |",
    ]
    for r in sorted(mismatched, key=lambda r: r["id"]):
        lines.append(f"| `{r['id']}` | {_cell(r['compare']['cause'], 260)} |")
    lines += [
        "",
        f"## Examples that fail on Keras: {n - len(rows)}",
        "",
        "Not compared. Keras's first error, grouped:",
        "",
        "| # | examples | Keras's error |",
        "| --- | --- | --- |",
    ]
    for rank, (key, count) in enumerate(
        sorted(keras_fail.items(), key=lambda kv: (-kv[1], kv[0]))[:40], 1
    ):
        lines.append(f"| {rank} | {count} | {_cell(key, 200)} |")
    path.write_text("\n".join(lines) + "\n")


def _leaves(values: list[Any]) -> list[dict[str, Any]]:
    out = []
    for v in values:
        if not isinstance(v, dict):
            continue
        if v["t"] == "seq" and not v.get("random"):
            out += _leaves(v["items"])
        elif v["t"] == "dict" and not v.get("random"):
            out += _leaves(list(v["items"].values()))
        elif v["t"] not in ("object",):
            out.append(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
