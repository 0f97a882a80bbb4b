"""The program corpus: how many public Keras 3 programs run on kcompile with only the import
changed (issue 26).

    python benchmarks/keras_corpus.py /work/corpus [--keras-python /work/kenv/bin/python]
        [--timeout 120] [--only NAME] [--jobs 1] [--refresh-keras] [--report benchmarks/CORPUS.md]

Each ``*.py`` in the folder is run twice, each time in its own subprocess and temporary
working directory: with real Keras (``KERAS_BACKEND=jax``, the Keras python) and with
kcompile (this python, the program's ``import keras`` / ``from keras import ...`` /
``from keras.X import ...`` rewritten to ``kcompile``; nothing else in the program changes).
The program's top-level statements run one by one (``ast``), each in the same namespace,
continuing after a failure, so each side gives the statements that failed. A program runs
"as far as on Keras" when every statement that failed on kcompile also failed (or was not
reached) on Keras.

Both sides run the same shim first (``_install_shim``), which patches the framework's
public API only, identically on both sides, to make runs short and offline:

- ``Model.fit``: at most 1 epoch; array data cut to 3 batches, validation arrays to 2;
  ``steps_per_epoch`` / ``validation_steps`` at most 3; ``Model.evaluate`` arrays cut to
  3 batches.
- ``keras.datasets.X.load_data`` (and ``get_word_index`` / ``get_label_names``): synthetic
  data of the real shapes and dtypes, a few hundred samples (where the framework has the
  module; a module kcompile lacks stays absent).
- ``keras.utils.get_file``: refuses, naming the URL (no network); the report lists the
  program as needing a download. HTTP(S) proxies point at a closed loopback port so any
  other download fails at once.
- ``matplotlib`` (installed on neither side): a stand-in that accepts every call and draws
  nothing, so plotting statements do not fail on both sides and hide the model code around
  them.

A program that hangs, or kills its interpreter, is a result: each side writes one JSON line
per statement as it goes, so the parent knows which statement was running when the timeout
struck or the process died. Keras-side results are cached in ``FOLDER/.keras_results.json``
(keyed by the program's text and the shim version; a result cut short by a timeout is rerun
when the new timeout is longer) so reruns only run kcompile. ``--head`` runs kcompile's last
commit (``git archive HEAD``) instead of the checkout with its uncommitted work;
``--report-only`` rewrites the report from the last run's ``FOLDER/.results.json``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHIM_VERSION = "3"
OFFLINE_MARK = "[corpus] offline"
BACKEND_MODULES = ("tensorflow", "torch", "jax")
_CACHE_LOCK = threading.Lock()

# --------------------------------------------------------------------------------------
# The child: the shim and the statement runner (runs under either python, stdlib only).
# --------------------------------------------------------------------------------------


class _Anything:
    """matplotlib stand-in: every attribute, call, index and context is itself."""

    def __getattr__(self, name: str) -> _Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return self

    def __getitem__(self, key: Any) -> _Anything:
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __iter__(self):
        return iter((self, self))

    def __len__(self) -> int:
        return 2

    def __enter__(self) -> _Anything:
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False


def _install_plot_stub() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        import types

        anything = _Anything()
        for name in (
            "matplotlib",
            "matplotlib.pyplot",
            "matplotlib.cm",
            "matplotlib.colors",
            "matplotlib.image",
            "matplotlib.patches",
            "matplotlib.ticker",
        ):
            module = types.ModuleType(name)
            module.__getattr__ = lambda attr, _a=anything: _a  # type: ignore[attr-defined]
            module.__path__ = []  # type: ignore[attr-defined]
            sys.modules[name] = module


def _synthetic_datasets(np: Any) -> dict[str, dict[str, Any]]:
    """load_data replacements of the real datasets' shapes and dtypes, a few hundred rows."""
    rng = np.random.default_rng(0)
    n_train, n_test = 512, 128

    def images(shape: tuple, classes: int, label_shape: tuple = ()):
        def load_data(*args: Any, **kwargs: Any):
            count = 20 if kwargs.get("label_mode") == "coarse" else classes

            def part(n: int):
                x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
                y = rng.integers(0, count, size=(n, *label_shape)).astype(np.uint8)
                return x, y

            return part(n_train), part(n_test)

        return load_data

    def sequences(classes: int, vocabulary: int):
        def load_data(
            *args: Any,
            num_words: int | None = None,
            maxlen: int | None = None,
            start_char: int = 1,
            index_from: int = 3,
            **kwargs: Any,
        ):
            top = num_words or vocabulary + index_from
            longest = maxlen or 300

            def part(n: int):
                xs = np.empty(n, dtype=object)
                for i in range(n):
                    length = int(rng.integers(10, max(11, longest)))
                    words = rng.integers(index_from + 1, top, size=length - 1).tolist()
                    xs[i] = [start_char, *words]
                return xs, rng.integers(0, classes, size=n).astype(np.int64)

            return part(n_train), part(n_test)

        def get_word_index(*args: Any, **kwargs: Any) -> dict[str, int]:
            return {f"word{i}": i for i in range(1, vocabulary + 1)}

        def get_label_names(*args: Any, **kwargs: Any) -> tuple[str, ...]:
            return tuple(f"label{i}" for i in range(classes))

        return {
            "load_data": load_data,
            "get_word_index": get_word_index,
            "get_label_names": get_label_names,
        }

    def table(features: int):
        def load_data(*args: Any, **kwargs: Any):
            def part(n: int):
                x = rng.normal(size=(n, features)) * 10 + 20
                return x, rng.normal(size=n) * 5 + 22

            return part(404), part(102)

        return load_data

    return {
        "mnist": {"load_data": images((28, 28), 10)},
        "fashion_mnist": {"load_data": images((28, 28), 10)},
        "cifar10": {"load_data": images((32, 32, 3), 10, (1,))},
        "cifar100": {"load_data": images((32, 32, 3), 100, (1,))},
        "imdb": sequences(2, 88584),
        "reuters": sequences(46, 30979),
        "boston_housing": {"load_data": table(13)},
        "california_housing": {"load_data": table(8)},
    }


def _cut(data: Any, n: int) -> Any:
    """The first n samples of an array, or of each array in a list / tuple / dict."""
    if hasattr(data, "shape") and hasattr(data, "__getitem__") and len(data.shape) > 0:
        return data[:n]
    if isinstance(data, (list, tuple)) and data and all(hasattr(d, "shape") for d in data):
        return type(data)(_cut(d, n) for d in data)
    if isinstance(data, dict) and data and all(hasattr(d, "shape") for d in data.values()):
        return {k: _cut(v, n) for k, v in data.items()}
    return data


def _is_arrays(data: Any) -> bool:
    return _cut(data, 1) is not data


def _install_shim(framework: Any) -> list[str]:
    """Patch the framework's public API (same on both sides); returns what was patched."""
    import functools
    import socket

    import numpy as np

    patched: list[str] = []
    socket.setdefaulttimeout(5)
    _install_plot_stub()

    model_cls = framework.Model
    fit, evaluate = model_cls.fit, model_cls.evaluate

    @functools.wraps(fit)
    def short_fit(self, x=None, y=None, batch_size=None, epochs=1, *args, **kwargs):
        if args:  # positional verbose, callbacks, ...: keep them, cap only epochs
            return fit(self, x, y, batch_size, min(epochs, 1), *args, **kwargs)
        initial = kwargs.get("initial_epoch", 0) or 0
        epochs = min(epochs, initial + 1)
        n = 3 * (batch_size or 32)
        if _is_arrays(x):
            x, y = _cut(x, n), _cut(y, n)
            if kwargs.get("sample_weight") is not None:
                kwargs["sample_weight"] = _cut(kwargs["sample_weight"], n)
        elif kwargs.get("steps_per_epoch") is None and x is not None:
            kwargs["steps_per_epoch"] = 3
        if kwargs.get("steps_per_epoch") is not None:
            kwargs["steps_per_epoch"] = min(kwargs["steps_per_epoch"], 3)
        val = kwargs.get("validation_data")
        if isinstance(val, (tuple, list)) and val and _is_arrays(val[0]):
            kwargs["validation_data"] = type(val)(_cut(v, 2 * (batch_size or 32)) for v in val)
        elif val is not None:
            kwargs["validation_steps"] = min(kwargs.get("validation_steps") or 2, 2)
        return fit(self, x, y, batch_size, epochs, **kwargs)

    @functools.wraps(evaluate)
    def short_evaluate(self, x=None, y=None, batch_size=None, *args, **kwargs):
        if _is_arrays(x) and not args:
            n = 3 * (batch_size or 32)
            x, y = _cut(x, n), _cut(y, n)
            if kwargs.get("sample_weight") is not None:
                kwargs["sample_weight"] = _cut(kwargs["sample_weight"], n)
        elif x is not None and not args and kwargs.get("steps") is None:
            kwargs["steps"] = 3
        return evaluate(self, x, y, batch_size, *args, **kwargs)

    model_cls.fit, model_cls.evaluate = short_fit, short_evaluate
    patched += ["Model.fit", "Model.evaluate"]

    datasets = getattr(framework, "datasets", None)
    for name, functions in _synthetic_datasets(np).items():
        try:
            module = getattr(datasets, name)
        except Exception:  # absent here: the program meets the absence itself
            continue
        for fn_name, fn in functions.items():
            if hasattr(module, fn_name):
                setattr(module, fn_name, fn)
                patched.append(f"datasets.{name}.{fn_name}")

    def get_file(fname=None, origin=None, *args: Any, **kwargs: Any):
        raise OSError(f"{OFFLINE_MARK}: download refused: {origin or fname}")

    utils = getattr(framework, "utils", None)
    if utils is not None and hasattr(utils, "get_file"):
        utils.get_file = get_file
        patched.append("utils.get_file")
    return patched


class _KerasImportRewriter(ast.NodeTransformer):
    """``import keras`` -> ``import kcompile as keras``; ``from keras.X import`` -> ``from
    kcompile.X import``; nothing else."""

    def visit_Import(self, node: ast.Import) -> ast.AST:
        names, bind_keras = [], False
        for alias in node.names:
            head, _, rest = alias.name.partition(".")
            if head != "keras":
                names.append(alias)
                continue
            target = "kcompile" + ("." + rest if rest else "")
            if alias.asname:
                names.append(ast.alias(target, alias.asname))
            elif not rest:
                names.append(ast.alias("kcompile", "keras"))
            else:  # ``import keras.ops`` binds ``keras``
                names.append(ast.alias(target))
                bind_keras = True
        if bind_keras:
            names.append(ast.alias("kcompile", "keras"))
        return ast.copy_location(ast.Import(names=names), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        module = node.module or ""
        if node.level == 0 and (module == "keras" or module.startswith("keras.")):
            node.module = "kcompile" + module[len("keras") :]
        return node


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _statements(source: str) -> list[ast.stmt]:
    try:
        return [s for s in ast.parse(source).body if not _is_docstring(s)]
    except SyntaxError:  # reported by the child; no statements to run
        return []


def _error_text(exc: BaseException, filename: str) -> dict[str, Any]:
    import traceback

    first = (str(exc).strip().splitlines() or [""])[0][:300]
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return {"type": type(exc).__name__, "message": first, "at": line}


def _child(side: str, program: str, out: str) -> None:
    """Run one program's statements one by one, one JSON line per statement."""
    path = Path(program).resolve()
    source = path.read_text()
    log = open(out, "a", buffering=1)  # noqa: SIM115 (open for the whole run)

    def emit(**record: Any) -> None:
        log.write(json.dumps(record) + "\n")
        log.flush()

    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        emit(event="syntax", message=f"{exc.msg} (line {exc.lineno})")
        return
    if side == "kcompile":
        tree = ast.fix_missing_locations(_KerasImportRewriter().visit(tree))
        import kcompile as framework
    else:
        import keras as framework
    emit(
        event="shim",
        patched=_install_shim(framework),
        version=getattr(framework, "__version__", "?"),
    )
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": str(path),
        "__builtins__": __builtins__,
    }
    body = [s for s in tree.body if not _is_docstring(s)]
    for index, stmt in enumerate(body):
        emit(event="start", index=index, line=stmt.lineno)
        start = time.perf_counter()
        try:
            code = compile(ast.Module(body=[stmt], type_ignores=[]), str(path), "exec")
            exec(code, namespace)
        except BaseException as exc:  # a statement's failure is a result, SystemExit too
            emit(
                event="end",
                index=index,
                line=stmt.lineno,
                ok=False,
                seconds=round(time.perf_counter() - start, 3),
                **_error_text(exc, str(path)),
            )
        else:
            emit(
                event="end",
                index=index,
                line=stmt.lineno,
                ok=True,
                seconds=round(time.perf_counter() - start, 3),
            )
    emit(event="done")
    log.close()
    os._exit(0)  # skip interpreter teardown (threads of JAX, compiled libraries)


# --------------------------------------------------------------------------------------
# The parent: run both sides, compare, report.
# --------------------------------------------------------------------------------------


def _run_side(
    side: str, python: str, program: Path, timeout: float, root: Path = REPO
) -> dict[str, Any]:
    """One side's result: per statement ok/error/timeout/crash/not_run, and notes."""
    statements = _statements(program.read_text())
    with tempfile.TemporaryDirectory(prefix=f"corpus_{side}_") as work:
        out = Path(work) / "statements.jsonl"
        env = dict(os.environ)
        env.update(
            {
                "KERAS_BACKEND": "jax",
                "JAX_PLATFORMS": "cpu",
                "CUDA_VISIBLE_DEVICES": "",
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "MPLBACKEND": "Agg",
                "PYTHONHASHSEED": "0",
                "PYTHONPATH": str(root) if side == "kcompile" else "",
                "http_proxy": "http://127.0.0.1:9",
                "https_proxy": "http://127.0.0.1:9",
                "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9",
                "PYTHONUNBUFFERED": "1",
            }
        )
        cmd = [python, str(Path(__file__).resolve()), "--_child", side, str(program), str(out)]
        start = time.perf_counter()
        with open(Path(work) / "output.txt", "wb") as output:
            proc = subprocess.Popen(
                cmd,
                cwd=work,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                returncode: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                returncode = None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        seconds = time.perf_counter() - start
        records = (
            [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
            if out.exists()
            else []
        )
        tail = (Path(work) / "output.txt").read_bytes()[-3000:].decode(errors="replace")
    result: dict[str, Any] = {"seconds": round(seconds, 1), "statements": []}
    syntax = [r for r in records if r["event"] == "syntax"]
    if syntax:
        result["fatal"] = f"SyntaxError: {syntax[0]['message']}"
    ends = {r["index"]: r for r in records if r["event"] == "end"}
    started = [r["index"] for r in records if r["event"] == "start"]
    running = started[-1] if started and started[-1] not in ends else None
    done = any(r["event"] == "done" for r in records)
    if not records and not syntax:
        result["fatal"] = (
            "interpreter died before the first statement: "
            + (tail.strip().splitlines() or ["(no output)"])[-1][:300]
        )
    for index, stmt in enumerate(statements):
        entry: dict[str, Any] = {"line": stmt.lineno}
        if index in ends:
            end = ends[index]
            entry["status"] = "ok" if end["ok"] else "error"
            if not end["ok"]:
                entry["error"] = f"{end['type']}: {end['message']}"
        elif index == running:
            if returncode is None:
                entry["status"], entry["error"] = "timeout", f"timeout after {timeout:.0f} s"
            else:
                entry["status"] = "crash"
                entry["error"] = (
                    f"interpreter died (exit {returncode}): "
                    + (tail.strip().splitlines() or [""])[-1][:200]
                )
        else:
            entry["status"] = "not_run"
        result["statements"].append(entry)
    if not done and running is None and records and not syntax:
        result["fatal"] = f"stopped between statements (exit {returncode})"
    return result


def _failed(side: dict[str, Any]) -> list[int]:
    return [
        i for i, s in enumerate(side["statements"]) if s["status"] in ("error", "timeout", "crash")
    ]


def _notes(program: Path, keras_side: dict[str, Any]) -> list[str]:
    """Why a program cannot run here whatever the framework: downloads, packages, backends."""
    source = program.read_text()
    notes: list[str] = []
    imported = set()
    for node in ast.walk(ast.Module(body=_statements(source), type_ignores=[])):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    backends = sorted(m for m in BACKEND_MODULES if m in imported)
    if backends:
        notes.append("imports a backend: " + ", ".join(backends))
    missing, downloads = set(), []
    for s in keras_side["statements"]:
        error = s.get("error", "")
        m = re.match(r"ModuleNotFoundError: No module named '([\w.]+)'", error)
        if m:
            missing.add(m.group(1).split(".")[0])
        if OFFLINE_MARK in error:
            downloads.append(error.split("download refused: ", 1)[-1])
    if missing:
        notes.append("needs packages not installed: " + ", ".join(sorted(missing)))
    if downloads:
        notes.append(f"needs a download at run time ({len(downloads)}: {downloads[0][:80]})")
    if re.search(r"tensorflow_datasets|tfds\.load", source):
        notes.append("data from tensorflow_datasets (not synthesized)")
    if re.search(r"\bwget\b|\bcurl\b|urlretrieve|requests\.get", source):
        notes.append("downloads with a shell or HTTP call")
    if re.search(
        r"image_dataset_from_directory|text_dataset_from_directory|"
        r"audio_dataset_from_directory|read_csv|np\.loadtxt",
        source,
    ):
        notes.append("reads data files (not synthesized)")
    if re.search(r"\bGPU\b|\bTPU\b", source) and "Accelerator: GPU" not in source:
        notes.append("mentions GPU/TPU")
    return notes


def _compare(keras_side: dict[str, Any], kc_side: dict[str, Any]) -> dict[str, Any]:
    """kcompile-only failures: statements that ran on Keras and failed on kcompile."""
    only = [
        i
        for i, (k, c) in enumerate(zip(keras_side["statements"], kc_side["statements"]))
        if k["status"] == "ok" and c["status"] != "ok"
    ]
    result: dict[str, Any] = {"as_far_as_keras": not only, "kcompile_only": len(only)}
    result["keras_only"] = sum(
        k["status"] in ("error", "timeout", "crash") and c["status"] == "ok"
        for k, c in zip(keras_side["statements"], kc_side["statements"])
    )
    errors = [kc_side["statements"][i].get("error") for i in only]
    result["errors"] = sorted({e for e in errors if e})
    if only:
        stmt = kc_side["statements"][only[0]]
        if stmt["status"] == "not_run":  # stopped before it: blame what stopped the run
            stopped = [s for s in kc_side["statements"] if s["status"] in ("timeout", "crash")]
            error = stopped[0]["error"] if stopped else kc_side.get("fatal", "did not run")
        else:
            error = stmt["error"]
        result["first"] = {"line": stmt["line"], "error": error}
    return result


def _kind(program: Path) -> str:
    folder = program.name.split("__", 1)[0] if "__" in program.name else ""
    title = re.search(r"^Title:\s*(.+)$", program.read_text(), re.MULTILINE)
    return folder + (f": {title.group(1).strip()}" if title else "")


def _source(program: Path) -> str:
    first = program.read_text().splitlines()[0]
    m = re.match(r"#\s*source:\s*(\S+)\s+(\S+)(?:\s*@\s*([0-9a-f]+))?", first)
    if not m:
        return program.name
    return f"{m.group(1)} {m.group(2)}" + (f" @{m.group(3)[:10]}" if m.group(3) else "")


def _error_key(error: str) -> str:
    """Group errors that differ only by names of generated objects, numbers and shapes."""
    key = re.sub(r"(/[\w.+-]+){2,}/?", "…", error)  # file paths (a temporary folder's, ...)
    key = re.sub(r"'[A-Za-z]\w*_\d+'", "'…'", key)  # generated names: 'dense_12'
    key = re.sub(r"(?<![\w.])\d+(?!\w)", "N", key)  # numbers, not those inside names
    return key[:160]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _keras_version(python: str) -> str:
    try:
        return (
            subprocess.run(
                [python, "-c", "import keras; print(keras.__version__)"],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "KERAS_BACKEND": "jax"},
            ).stdout.strip()
            or "?"
        )
    except (OSError, subprocess.SubprocessError):
        return "?"


def _cache_key(program: Path) -> str:
    digest = hashlib.sha256(program.read_bytes()).hexdigest()[:16]
    return f"{digest}:{SHIM_VERSION}"


def _cache_usable(cached: dict[str, Any] | None, key: str, timeout: float) -> bool:
    """Same program and shim, and not cut short by a timeout shorter than this run's."""
    if not cached:
        return False
    parts = cached["key"].split(":")  # digest:shim, or digest:shim:timeout (older runs)
    if parts[:2] != key.split(":"):
        return False
    cached_timeout = cached.get("timeout", float(parts[2]) if len(parts) > 2 else 0.0)
    timed_out = any(s["status"] == "timeout" for s in cached["result"]["statements"])
    return not timed_out or cached_timeout >= timeout


def _table_cell(text: str, limit: int = 150) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _write_report(path: Path, rows: list[dict[str, Any]], meta: dict[str, str]) -> None:
    n = len(rows)
    ok = [r for r in rows if r["compare"]["as_far_as_keras"]]
    exempt = [r for r in rows if any(x.startswith("imports a backend") for x in r["notes"])]
    ok_exempt = [r for r in ok if r in exempt]
    blocking = Counter(
        _error_key(r["compare"]["first"]["error"])
        for r in rows
        if not r["compare"]["as_far_as_keras"]
    )
    examples: dict[str, list[str]] = {}
    for r in rows:
        if not r["compare"]["as_far_as_keras"]:
            examples.setdefault(_error_key(r["compare"]["first"]["error"]), []).append(r["name"])
    weak = [r for r in ok if r["statements"] == 0 or r["failed_keras"] * 2 > r["statements"]]
    failed_keras = sum(r["failed_keras"] for r in rows)
    failed_kc = sum(r["failed_kcompile"] for r in rows)
    statements = sum(r["statements"] for r in rows)
    lines = [
        "# The program corpus: public Keras 3 programs on kcompile, only the import changed",
        "",
        "Made by `python benchmarks/keras_corpus.py " + meta["folder"] + "` (issue 26). "
        "Each program's top-level statements run one by one, continuing after a failure, "
        "once on real Keras (JAX backend) and once on kcompile with only `import keras` "
        "rewritten; a program runs *as far as on Keras* when every statement that failed on "
        "kcompile also failed (or was not reached) on Keras. The corpus itself stays outside "
        "the repository (public code); each file's first line names its repository, path "
        "and commit.",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']}",
        f"- kcompile commit: {meta['commit']}",
        f"- Keras: {meta['keras']} (JAX backend), python `{meta['keras_python']}`",
        f"- Timeout per program and side: {meta['timeout']} s",
        "",
        "## Totals",
        "",
        f"- **{len(ok)} of {n} programs run as far as on Keras** "
        f"({len(ok) - len(ok_exempt)} of {n - len(exempt)} among the programs that do not "
        f"import a backend themselves). Of these {len(ok)}, {len(weak)} are weak evidence: "
        "Keras itself fails more than half of their statements (tensorflow, pandas, "
        "keras_hub... not installed, data that needs a download, or the file does not parse), "
        "so little of the program ran on either side.",
        f"- Statements: {statements}; failed on Keras {failed_keras}, on kcompile "
        f"{failed_kc}; kcompile-only failures "
        f"{sum(r['compare']['kcompile_only'] for r in rows)}; statements that failed on "
        f"Keras but ran on kcompile {sum(r['compare'].get('keras_only', 0) for r in rows)} "
        "(Keras's `TextVectorization` and other preprocessing layers need TensorFlow, "
        "kcompile's do not; and what followed them).",
        "",
        "How runs are made short and offline (the same shim on both sides, patching only the "
        "framework's public API): `Model.fit` runs 1 epoch on at most 3 batches of array "
        "data (at most 3 steps of a dataset or generator), `Model.evaluate` 3 batches; "
        "`keras.datasets.X.load_data` returns synthetic data of the real shapes and dtypes "
        "(512 training and 128 test samples; a dataset module kcompile lacks stays absent); "
        "`keras.utils.get_file` refuses with the URL (no network; such programs are "
        "listed below as needing a download, with the statements that need the data failing "
        "on both sides); matplotlib, installed on neither side, is replaced by a stand-in "
        "that draws nothing. Packages missing on both sides (tensorflow, pandas, keras_hub, "
        "...) make the same statements fail on both sides; the notes name them.",
        "",
        "## The corpus",
        "",
        "By kind: "
        + ", ".join(
            f"{kind} {count}"
            for kind, count in Counter(r["kind"].split(":")[0] for r in rows).most_common()
        )
        + ". The keras-io examples are the Keras 3 ports that keras-team/keras carried in "
        "`examples/keras_io/` until it removed them (its commit e5dad39059, January 2024; "
        "the copies are taken from its parent): every backend-agnostic one, and those of the "
        "`tensorflow/` folder that use TensorFlow only for `tf.data` or a line or two. The "
        "`keras_examples` are keras-team/keras's own `examples/` at its newest commit here, "
        "without the TensorFlow- and torch-only workflows. Not yet in the corpus: keras-io's "
        "guides (the keras-io repository is too large to fetch here, and the stored versions "
        "of its files are mostly the older tf.keras ones).",
        "",
        "## The errors that stop the most programs",
        "",
        "The first kcompile-only failure of each program, grouped (numbers shown as N, "
        "generated layer names as …):",
        "",
        "| # | programs | error | programs it stops |",
        "| --- | --- | --- | --- |",
    ]
    for rank, (key, count) in enumerate(sorted(blocking.items(), key=_by_count), 1):
        names = ", ".join(examples[key][:4]) + (" …" if len(examples[key]) > 4 else "")
        lines.append(f"| {rank} | {count} | {_table_cell(key, 200)} | {_table_cell(names)} |")
    anywhere = Counter(
        key
        for r in rows
        for key in {_error_key(e) for e in r["compare"].get("errors", [])}
        if not key.startswith("NameError")  # the echo of an earlier failure
    )
    lines += [
        "",
        "Behind the first failure come others. Every kcompile-only error, by how many programs "
        "it appears in (any statement, not only the first; `NameError`s, the echo of an "
        "earlier failure, left out):",
        "",
        "| # | programs | error |",
        "| --- | --- | --- |",
    ]
    for rank, (key, count) in enumerate(sorted(anywhere.items(), key=_by_count)[:40], 1):
        lines.append(f"| {rank} | {count} | {_table_cell(key, 200)} |")
    lines += [
        "",
        "## Per program",
        "",
        "Statements are the program's top-level statements (docstrings excluded); *Keras* "
        "and *kcompile* are how many failed on each side; the last column is the first "
        "statement that failed on kcompile only (its line in the corpus file, which has one "
        "extra first line naming the source) and the error's first line.",
        "",
        "| program | source | kind | stmts | Keras | kcompile | first kcompile-only failure "
        "| notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        first = r["compare"].get("first")
        first_text = (
            f"line {first['line']}: {first['error']}" if first else "runs as far as on Keras"
        )
        lines.append(
            f"| {r['name']} | {_table_cell(r['source'], 120)} | {_table_cell(r['kind'], 70)} "
            f"| {r['statements']} | {r['failed_keras']} | {r['failed_kcompile']} "
            f"| {_table_cell(first_text, 220)} | {_table_cell('; '.join(r['notes']), 200)} |"
        )
    path.write_text("\n".join(lines) + "\n")


def _run_program(program: Path, args: argparse.Namespace, cache: dict[str, Any]) -> dict[str, Any]:
    key = _cache_key(program)
    cached = cache.get(program.name)
    if _cache_usable(cached, key, args.timeout) and not args.refresh_keras:
        keras_side = cached["result"]
    else:
        keras_side = _run_side("keras", args.keras_python, program, args.timeout)
        with _CACHE_LOCK:
            cache[program.name] = {"key": key, "timeout": args.timeout, "result": keras_side}
            cache_path = args.folder / ".keras_results.json"
            cache_path.write_text(json.dumps(cache, indent=1))
    kc_side = _run_side("kcompile", sys.executable, program, args.timeout, args.root)
    compare = _compare(keras_side, kc_side)
    row = {
        "name": program.stem,
        "source": _source(program),
        "kind": _kind(program),
        "statements": len(keras_side["statements"]),
        "failed_keras": len(_failed(keras_side)),
        "failed_kcompile": len(_failed(kc_side)),
        "compare": compare,
        "notes": _notes(program, keras_side),
        "seconds": [keras_side["seconds"], kc_side["seconds"]],
        "kcompile_statements": kc_side["statements"],
    }
    for side, result in (("Keras", keras_side), ("kcompile", kc_side)):
        if result.get("fatal"):
            row["notes"].append(f"{side}: {result['fatal']}")
    status = (
        "as far as Keras"
        if compare["as_far_as_keras"]
        else (f"line {compare['first']['line']}: {compare['first']['error'][:100]}")
    )
    print(
        f"{program.stem}: {row['statements']} statements, failed Keras "
        f"{row['failed_keras']} / kcompile {row['failed_kcompile']} "
        f"({row['seconds'][0]} s / {row['seconds'][1]} s) - {status}",
        flush=True,
    )
    return row


def _run_program_safely(
    program: Path, args: argparse.Namespace, cache: dict[str, Any]
) -> dict[str, Any]:
    """A program the runner itself cannot handle is a row saying why, not a crash."""
    try:
        return _run_program(program, args, cache)
    except Exception as exc:
        print(f"{program.stem}: runner error {type(exc).__name__}: {exc}", flush=True)
        return {
            "name": program.stem,
            "source": _source(program),
            "kind": _kind(program),
            "statements": 0,
            "failed_keras": 0,
            "failed_kcompile": 0,
            "compare": {
                "as_far_as_keras": False,
                "kcompile_only": 0,
                "first": {"line": 0, "error": f"runner error {type(exc).__name__}: {exc}"},
            },
            "notes": ["the runner could not run it"],
            "seconds": [0, 0],
        }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        _child(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--keras-python", default="/work/kenv/bin/python")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only programs whose name contains this (repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="programs run at once")
    parser.add_argument(
        "--refresh-keras", action="store_true", help="rerun the Keras side even when cached"
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=REPO / "benchmarks" / "CORPUS.md",
        help="where to write the report (not written with --only)",
    )
    parser.add_argument(
        "--head",
        action="store_true",
        help="run kcompile's last commit (git archive HEAD into a temporary folder), not the "
        "checkout with its uncommitted work",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from FOLDER/.results.json (the last run) without running",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        meta = json.loads((args.folder / ".results_meta.json").read_text())
        rows = json.loads((args.folder / ".results.json").read_text())
        for row in rows:  # the sources' descriptions as the files now give them
            program = args.folder / f"{row['name']}.py"
            if program.exists():
                row["source"], row["kind"] = _source(program), _kind(program)
        _write_report(args.report, rows, meta)
        return 0
    with tempfile.TemporaryDirectory(prefix="kcompile_head_") as head:
        args.root, args.commit = REPO, _git("rev-parse", "--short", "HEAD")
        if args.head:  # the commit named in the report is the one archived
            archive = subprocess.run(
                ["git", "archive", args.commit], cwd=REPO, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", head], input=archive, check=True)
            args.root = Path(head)
        return _run_all(args, parser)


def _run_all(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    programs = sorted(
        p for p in args.folder.glob("*.py") if not args.only or any(o in p.stem for o in args.only)
    )
    if not programs:
        parser.error(f"no programs in {args.folder}")
    cache_path = args.folder / ".keras_results.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    results_path = args.folder / ".results.json"
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda p: _run_program_safely(p, args, cache), programs))
    cache_path.write_text(json.dumps(cache, indent=1))
    if args.only and results_path.exists():  # a partial run updates its rows only
        ran = {r["name"] for r in rows}
        earlier = [r for r in json.loads(results_path.read_text()) if r["name"] not in ran]
        rows_to_save = sorted(earlier + rows, key=lambda r: r["name"])
    else:
        rows_to_save = rows
    results_path.write_text(json.dumps(rows_to_save, indent=1))
    ok = sum(r["compare"]["as_far_as_keras"] for r in rows)
    print(f"{ok} of {len(rows)} programs run as far as on Keras")
    if args.only:
        return 0
    dirty = "" if args.head else _git("status", "--porcelain")
    meta = {
        "folder": str(args.folder),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "commit": args.commit
        + (" (the committed tree, run from `git archive HEAD`)" if args.head else "")
        + (f" with {len(dirty.splitlines())} uncommitted changes in the checkout" if dirty else ""),
        "keras": _keras_version(args.keras_python),
        "keras_python": args.keras_python,
        "timeout": f"{args.timeout:g}",
    }
    (args.folder / ".results_meta.json").write_text(json.dumps(meta, indent=1))
    _write_report(args.report, rows, meta)
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
