"""The program corpus: how many public Keras 3 programs run on kcompile with only the import
changed (issue 26).

    python benchmarks/keras_corpus.py [FOLDER] [--keras-python /work/kenv/bin/python]
        [--timeout 120] [--only NAME] [--jobs 1] [--no-ported] [--refresh-keras]
        [--state DIR] [--report benchmarks/CORPUS.md]

FOLDER is ``benchmarks/corpus`` by default: public Keras 3 programs, each exactly as
published after two header comment lines (source repository, path and commit; license).
Each ``*.py`` in it is run twice, each time in its own subprocess and temporary
working directory: with real Keras (``KERAS_BACKEND=jax``, the Keras python) and with
kcompile (this python, the program's ``import keras`` / ``from keras import ...`` /
``from keras.X import ...`` rewritten to ``kcompile``; nothing else in the program changes).
The program's top-level statements run one by one (``ast``), each in the same namespace,
continuing after a failure, so each side gives the statements that failed. A program runs
"as far as on Keras" when every statement that failed on kcompile also failed (or was not
reached) on Keras.

A third run, reported apart and never mixed into those numbers, is the "ported" one: for
the programs of ``PORTS`` (custom train steps written against a backend: ``jax.value_and_grad``,
``tf.GradientTape``, ``loss.backward()``), the listed texts are replaced by kcompile's
``keras.value_and_grad`` / ``keras.GradientTape`` and ``keras.ops`` equivalents before the
same import rewrite.

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
struck or the process died. Keras-side results are cached in ``STATE/keras_results.json``
(outside the repository; keyed by the program's published text and the shim version; a
result cut short by a timeout is rerun when the new timeout is longer) so reruns only run
kcompile. ``--head`` runs kcompile's last commit (``git archive HEAD``) instead of the
checkout with its uncommitted work; ``--report-only`` rewrites the report from the last
run's ``STATE/results.json``.
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
CORPUS = REPO / "benchmarks" / "corpus"
# Caches and the last run's results: outside the repository (they name this machine's paths).
STATE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kcompile-corpus"
SHIM_VERSION = "3"
OFFLINE_MARK = "[corpus] offline"
BACKEND_MODULES = ("tensorflow", "torch", "jax")
_CACHE_LOCK = threading.Lock()
_HEADER = re.compile(r"#\s*(source|license):")

# --------------------------------------------------------------------------------------
# Ports: the second, separate measurement. Keras 3's custom train steps differentiate with
# their backend (jax.value_and_grad, tf.GradientTape, loss.backward()), which no framework
# but that backend can run; kcompile offers keras.value_and_grad / keras.GradientTape
# traced into the compiled step (docs/training-loop.md, "A model's own train_step"). For
# the programs below, the "ported" run replaces exactly these texts (every occurrence;
# each must occur; each keeps the line count, so lines are the corpus file's) and then
# rewrites the import as the unmodified run does. Only backend calls get replaced, by their
# keras / keras.ops equivalents, plus, where named "data", a tf.data / torch DataLoader
# pipeline by the arrays it was built from. Nothing else in the program changes.
# --------------------------------------------------------------------------------------

_TAPE = (("tf.GradientTape(", "keras.GradientTape("),)
_TF_OPS = {  # TensorFlow's op -> the keras.ops / keras.random equivalent (same arguments)
    "shape": ("tf.shape(", "keras.ops.shape("),
    "concat": ("tf.concat(", "keras.ops.concatenate("),
    "ones": ("tf.ones(", "keras.ops.ones("),
    "zeros": ("tf.zeros(", "keras.ops.zeros("),
    "normal": ("tf.random.normal(", "keras.random.normal("),
    "uniform": ("tf.random.uniform(", "keras.random.uniform("),
    "reduce_mean": ("tf.reduce_mean(", "keras.ops.mean("),
    "reduce_sum": ("tf.reduce_sum(", "keras.ops.sum("),
    "square": ("tf.square(", "keras.ops.square("),
    "exp": ("tf.exp(", "keras.ops.exp("),
    "sqrt": ("tf.sqrt(", "keras.ops.sqrt("),
}


def _tf(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple(_TF_OPS[n] for n in names)


# torch's step: open a tape where the guide clears the old gradients (before the forward
# pass), read the gradients from it where the guide reads `.grad`.
_TORCH_STEP = (
    ("self.zero_grad()", "tape = keras.GradientTape().__enter__()"),
    ("        loss.backward()\n", "        pass  # ported: loss.backward()\n"),
    (
        "gradients = [v.value.grad for v in trainable_weights]",
        "gradients = tape.gradient(loss, trainable_weights)",
    ),
    ("with torch.no_grad():", "if True:  # ported: with torch.no_grad():"),
)

PORTS: dict[str, tuple[tuple[str, str], ...]] = {
    "guides__custom_train_step_in_jax": (
        ("import jax\n", "pass  # ported: import jax\n"),
        ("jax.value_and_grad(", "keras.value_and_grad("),
    ),
    "guides__custom_train_step_in_tensorflow": (
        *_TAPE,
        *_tf("shape", "concat", "ones", "zeros"),
        # data
        (
            "dataset = tf.data.Dataset.from_tensor_slices(all_digits)\n"
            "dataset = dataset.shuffle(buffer_size=1024).batch(batch_size)\n",
            "dataset = all_digits  # ported: tf.data.Dataset.from_tensor_slices(all_digits)\n"
            "pass  # ported: dataset.shuffle(buffer_size=1024).batch(batch_size)\n",
        ),
        (
            "gan.fit(dataset.take(100), epochs=1)",
            "gan.fit(dataset, batch_size=batch_size, epochs=1)",
        ),
    ),
    "guides__custom_train_step_in_torch": (
        *_TORCH_STEP,
        ("real_images = torch.tensor(real_images)", "pass  # ported: torch.tensor(real_images)"),
        ("torch.concat(", "keras.ops.concatenate("),
        ("torch.ones(", "keras.ops.ones("),
        ("torch.zeros(", "keras.ops.zeros("),
        ("        d_loss.backward()\n", "        pass  # ported: d_loss.backward()\n"),
        (
            "grads = [v.value.grad for v in self.discriminator.trainable_weights]",
            "grads = tape.gradient(d_loss, self.discriminator.trainable_weights)",
        ),
        ("grads = g_loss.backward()", "pass  # ported: g_loss.backward()"),
        (
            "grads = [v.value.grad for v in self.generator.trainable_weights]",
            "grads = tape.gradient(g_loss, self.generator.trainable_weights)",
        ),
        # data
        (
            "dataset = torch.utils.data.TensorDataset(\n"
            "    torch.from_numpy(all_digits), torch.from_numpy(all_digits)\n"
            ")\n",
            "dataset = (  # ported: torch.utils.data.TensorDataset(\n"
            "    all_digits  # ported: torch.from_numpy(all_digits), twice\n"
            ")\n",
        ),
        (
            "dataloader = torch.utils.data.DataLoader(\n"
            "    dataset, batch_size=batch_size, shuffle=True\n"
            ")\n",
            "dataloader = (  # ported: torch.utils.data.DataLoader(\n"
            "    dataset  # ported: batch_size=batch_size, shuffle=True\n"
            ")\n",
        ),
        ("gan.fit(dataloader, epochs=1)", "gan.fit(dataloader, batch_size=batch_size, epochs=1)"),
    ),
    "generative__vae": (
        *_TAPE,
        *_tf("shape", "normal", "exp", "reduce_mean", "reduce_sum", "square"),
    ),
    "generative__wgan_gp": (
        *_TAPE,
        *_tf("normal", "sqrt", "reduce_sum", "square", "reduce_mean", "shape"),
    ),
    "generative__dcgan_overriding_train_step": (
        *_TAPE,
        *_tf("shape", "normal", "concat", "ones", "zeros", "uniform"),
    ),
    "keras_recipes__trainer_pattern": _TAPE,
    "vision__metric_learning": _TAPE,
}


def _port(name: str, source: str) -> str:
    """The program's text with its entry of ``PORTS`` applied."""
    for old, new in PORTS[name]:
        if old not in source:
            raise ValueError(f"port of {name}: {old!r} does not occur in the program")
        if old.count("\n") != new.count("\n"):
            raise ValueError(f"port of {name}: {old!r} -> {new!r} changes the line count")
        source = source.replace(old, new)
    return source


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

    if side == "ported":  # the PORTS entry, then the same import rewrite as kcompile's
        source = _port(path.stem, source)
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        emit(event="syntax", message=f"{exc.msg} (line {exc.lineno})")
        return
    if side in ("kcompile", "ported"):
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
                "PYTHONPATH": str(root) if side != "keras" else "",
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


def _body(text: str) -> str:
    """The program as published: its text without the corpus's header comment lines."""
    lines = text.splitlines(keepends=True)
    while lines and _HEADER.match(lines[0]):
        lines.pop(0)
    return "".join(lines)


def _cache_key(program: Path) -> str:
    """The program's published text and the shim: a header edit keeps Keras's results."""
    digest = hashlib.sha256(_body(program.read_text()).encode()).hexdigest()[:16]
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


def _weak(r: dict[str, Any]) -> bool:
    """Keras itself failed more than half the program: little ran on either side."""
    return r["statements"] == 0 or r["failed_keras"] * 2 > r["statements"]


def _imports_backend(r: dict[str, Any]) -> bool:
    return any(x.startswith("imports a backend") for x in r["notes"])


def _first_text(compare: dict[str, Any]) -> str:
    first = compare.get("first")
    return f"line {first['line']}: {first['error']}" if first else "runs as far as on Keras"


def _history_lines(history: list[dict[str, Any]]) -> list[str]:
    if not history:
        return []
    lines = ["", "Earlier full runs (unmodified programs):", ""]
    for h in history[-6:]:
        lines.append(
            f"- {h['date']}, kcompile {h['commit']}: {h['ok']} of {h['programs']} programs "
            "as far as on Keras"
            + (f"; ported {h['ported_ok']} of {h['ported']}" if h.get("ported") else "")
        )
    return lines


def _category_lines(rows: list[dict[str, Any]]) -> list[str]:
    kinds = sorted(
        {r["kind"].split(":")[0] for r in rows},
        key=lambda k: (-sum(r["kind"].split(":")[0] == k for r in rows), k),
    )
    lines = [
        "| kind | programs | as far as on Keras | of these, weak evidence | import a backend "
        "| statements | failed on Keras | failed on kcompile | kcompile-only failures |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind in kinds:
        rs = [r for r in rows if r["kind"].split(":")[0] == kind]
        ok = [r for r in rs if r["compare"]["as_far_as_keras"]]
        lines.append(
            f"| {kind} | {len(rs)} | {len(ok)} | {sum(_weak(r) for r in ok)} "
            f"| {sum(_imports_backend(r) for r in rs)} | {sum(r['statements'] for r in rs)} "
            f"| {sum(r['failed_keras'] for r in rs)} | {sum(r['failed_kcompile'] for r in rs)} "
            f"| {sum(r['compare']['kcompile_only'] for r in rs)} |"
        )
    return lines


def _environment_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What cannot work on this machine whatever the framework, counted over programs."""
    n = len(rows)

    def having(prefix: str) -> list[dict[str, Any]]:
        return [r for r in rows if any(x.startswith(prefix) for x in r["notes"])]

    backends: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for r in rows:
        for note in r["notes"]:
            if note.startswith("imports a backend: "):
                backends.update(note.split(": ", 1)[1].split(", "))
            if note.startswith("needs packages not installed: "):
                packages.update(note.split(": ", 1)[1].split(", "))
    download = having("needs a download")
    shell = having("downloads with a shell")
    tfds = having("data from tensorflow_datasets")
    files = having("reads data files")
    gpu = having("mentions GPU")
    return [
        "Neither side has network, a GPU, TensorFlow or PyTorch here, so what needs them fails "
        "on both sides and counts for neither; the shim makes `keras.datasets` synthetic "
        "and refuses `keras.utils.get_file` (the notes of each program name what it needed):",
        "",
        f"- A download at run time: {len(download)} of {n} programs through "
        f"`keras.utils.get_file`, {len(shell)} through a shell or HTTP call (wget, curl, "
        f"requests, urlretrieve, gdown); {len(tfds)} load their data with "
        f"`tensorflow_datasets`, {len(files)} read data files (directories of images, CSV "
        "files) that only the download would have made. The statements that use the data "
        "fail on both sides; the model code around them still runs and counts.",
        "- A backend imported by the program itself: "
        + ", ".join(f"{name} {count}" for name, count in backends.most_common())
        + " programs (`import tensorflow as tf` for `tf.data`, `tf.image` or a custom step; "
        "`import jax` / `import torch` for a custom step or loop). TensorFlow and PyTorch "
        "are installed on neither side, JAX only on Keras's (it is Keras's backend): a "
        "program's own `jax` import fails on kcompile only, and its JAX-written step cannot "
        "run there unmodified (see *Ported* below).",
        "- Other packages installed on neither side: "
        + ", ".join(f"{name} {count}" for name, count in packages.most_common(12))
        + (" …" if len(packages) > 12 else "")
        + ".",
        f"- A GPU or TPU: {len(gpu)} of {n} programs mention one (a `jax.distributed` or "
        "`tf.distribute` setup, a device check); everything runs on this CPU, and a "
        "multi-device program sees one device.",
    ]


def _ported_lines(rows: list[dict[str, Any]]) -> list[str]:
    ported = [r for r in rows if "ported" in r]
    if not ported:
        return []
    ok_before = sum(r["compare"]["as_far_as_keras"] for r in ported)
    ok_after = sum(r["ported"]["compare"]["as_far_as_keras"] for r in ported)
    gained = sum(r["ported"]["gained"] for r in ported)
    clean = sum(r["ported"].get("left", 0) == 0 for r in ported)
    lines = [
        "## Ported: custom steps written against a backend (a separate measurement)",
        "",
        "Keras 3's custom `train_step`s differentiate with their backend (`jax.value_and_grad`, "
        "`tf.GradientTape`, `loss.backward()`); no other framework can run that line, and "
        "kcompile offers `keras.value_and_grad` / `keras.GradientTape` traced into the "
        "compiled step instead (docs/training-loop.md). For the programs of the runner's "
        "`PORTS` table the *ported* run replaces exactly those texts (the backend's calls in "
        "the step by their `keras` / `keras.ops` equivalents, and where the table says "
        "*data*, a `tf.data` / `DataLoader` pipeline by the arrays it was built from), then "
        "rewrites the import as the unmodified run does. These numbers are never counted in "
        "the totals above. The reference is still Keras running the unmodified program: "
        "TensorFlow and PyTorch are not installed here, so for their programs Keras's own "
        "run stops at the backend's import and *as far as on Keras* is weak; the useful "
        "columns are the statements the port made run and the failures left.",
        "",
        f"- **{clean} of {len(ported)} ported programs leave no failure on kcompile** but "
        "what fails unmodified and on Keras alike (the program's own `import tensorflow` / "
        "`import torch`, data it downloads); "
        f"{ok_after} of {len(ported)} run as far as on Keras ({ok_before} of {len(ported)} "
        f"unmodified); the ports made {gained} statements run that failed unmodified.",
        "",
        "| program | stmts | failed: Keras | kcompile unmodified | kcompile ported "
        "| ran only once ported | failures left | first failure left on kcompile (ported) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in ported:
        p = r["ported"]
        first = (
            f"line {p['first_failure']['line']}: {p['first_failure']['error']}"
            if p.get("first_failure")
            else "none"
        )
        lines.append(
            f"| {r['name']} | {r['statements']} | {r['failed_keras']} | {r['failed_kcompile']} "
            f"| {p['failed']} | {p['gained']} | {p.get('left', 0)} | {_table_cell(first, 220)} |"
        )
    return [*lines, ""]


def _write_report(
    path: Path,
    rows: list[dict[str, Any]],
    meta: dict[str, str],
    history: list[dict[str, Any]] | None = None,
) -> None:
    n = len(rows)
    ok = [r for r in rows if r["compare"]["as_far_as_keras"]]
    exempt = [r for r in rows if _imports_backend(r)]
    ok_exempt = [r for r in ok if r in exempt]
    blocking = Counter(
        _error_key(r["compare"]["first"]["error"])
        for r in rows
        if not r["compare"]["as_far_as_keras"]
    )
    examples: dict[str, list[str]] = {}
    for r in rows:
        if not r["compare"]["as_far_as_keras"]:
            first = r["compare"]["first"]
            examples.setdefault(_error_key(first["error"]), []).append(
                f"{r['name']}:{first['line']}"
            )
    weak = [r for r in ok if _weak(r)]
    failed_keras = sum(r["failed_keras"] for r in rows)
    failed_kc = sum(r["failed_kcompile"] for r in rows)
    statements = sum(r["statements"] for r in rows)
    kinds = Counter(r["kind"].split(":")[0] for r in rows)
    lines = [
        "# The program corpus: public Keras 3 programs on kcompile, only the import changed",
        "",
        "Made by `python benchmarks/keras_corpus.py` (issue 26) from the programs in "
        "`benchmarks/corpus/` (listed with their sources in `benchmarks/corpus.json`; the "
        "repository keeps the list, not the programs). Each program's top-level statements run one by one, "
        "continuing after a failure, once on real Keras (JAX backend) and once on kcompile "
        "with only `import keras` rewritten; a program runs *as far as on Keras* when every "
        "statement that failed on kcompile also failed (or was not reached) on Keras. A "
        "second, separate run measures custom steps written against a backend once ported "
        "(*Ported*, below).",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {meta['machine']}",
        f"- kcompile commit: {meta['commit']}",
        f"- Keras: {meta['keras']} (JAX backend), python `{meta['keras_python']}`",
        f"- Timeout per program and side: {meta['timeout']} s",
        "",
        "## Totals (unmodified programs: only the import changed)",
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
        *_history_lines(history or []),
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
        "...) make the same statements fail on both sides; the notes name them. Each side "
        "of each program has its own process, working directory and timeout; a program "
        "that hangs or kills its interpreter is a result.",
        "",
        "## The corpus",
        "",
        f"{n} programs (`benchmarks/corpus.json`), each exactly as published after two header "
        "lines (its source repository, path and commit; its license, Apache-2.0 for "
        "keras-team's repositories). By kind: "
        + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common())
        + ". The `guides` are the Keras 3 guides that keras-team/keras keeps in `guides/` "
        "(those of keras.io/guides: the functional API, the Sequential model, subclassing, "
        "training with the built-in methods, custom train steps and training loops in JAX, "
        "TensorFlow and PyTorch, callbacks, masking, transfer learning, distributed "
        "training), at its newest commit here, and keras.io's *Introduction to Keras for "
        "engineers* (keras-team/keras-io; its other guides are stored here only in their "
        "older tf.keras versions). The keras-io examples are the Keras 3 ports "
        "that keras-team/keras carried in `examples/keras_io/` until it removed them (its "
        "commit e5dad39059, January 2024; the copies are taken from its parent): every "
        "backend-agnostic one, those of the `tensorflow/` folder that use TensorFlow only "
        "for `tf.data` or a line or two, and the custom-step ones (VAE, DCGAN, WGAN-GP, "
        "SimSiam, SimCLR, siamese network, metric learning, the trainer pattern). The "
        "`keras_examples` are keras-team/keras's own `examples/`, without the TensorFlow- "
        "and torch-only workflows.",
        "",
        "## By category",
        "",
        *_category_lines(rows),
        "",
        "## What cannot work here, and why",
        "",
        *_environment_lines(rows),
        "",
        *_ported_lines(rows),
        "## The errors that stop the most programs",
        "",
        "The first kcompile-only failure of each unmodified program, grouped (numbers shown "
        "as N, generated layer names as …), with the program and line:",
        "",
        "| # | programs | error | where |",
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
        "and *kcompile* are how many failed on each side (unmodified programs); the last "
        "but one column is the first statement that failed on kcompile only (its line in "
        "the corpus file, whose first two lines are the header) and the error's first line.",
        "",
        "| program | source | kind | stmts | Keras | kcompile | first kcompile-only failure "
        "| notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {_table_cell(r['source'], 120)} | {_table_cell(r['kind'], 70)} "
            f"| {r['statements']} | {r['failed_keras']} | {r['failed_kcompile']} "
            f"| {_table_cell(_first_text(r['compare']), 220)} "
            f"| {_table_cell('; '.join(r['notes']), 200)} |"
        )
    path.write_text("\n".join(lines) + "\n")


def _keras_side(program: Path, args: argparse.Namespace, cache: dict[str, Any]) -> dict[str, Any]:
    """Keras's result, from the cache when the program and shim are unchanged."""
    key = _cache_key(program)
    cached = cache.get(program.name)
    if _cache_usable(cached, key, args.timeout) and not args.refresh_keras:
        keras_side = cached["result"]
        # lines as the file now has them (a header edit moves them, not the statements)
        for entry, stmt in zip(keras_side["statements"], _statements(program.read_text())):
            entry["line"] = stmt.lineno
        return keras_side
    keras_side = _run_side("keras", args.keras_python, program, args.timeout)
    with _CACHE_LOCK:
        cache[program.name] = {"key": key, "timeout": args.timeout, "result": keras_side}
        (args.state / "keras_results.json").write_text(json.dumps(cache, indent=1))
    return keras_side


def _ported(
    program: Path, args: argparse.Namespace, keras_side: dict[str, Any], kc_side: dict[str, Any]
) -> dict[str, Any]:
    """The ported run of a program of ``PORTS``, compared with Keras's unmodified run."""
    side = _run_side("ported", sys.executable, program, args.timeout, args.root)
    failed = _failed(side)
    gained = sum(
        before["status"] != "ok" and after["status"] == "ok"
        for before, after in zip(kc_side["statements"], side["statements"])
    )
    result: dict[str, Any] = {
        "compare": _compare(keras_side, side),
        "failed": len(failed),
        "gained": gained,
        "seconds": side["seconds"],
        "statements": side["statements"],
    }
    if side.get("fatal"):
        result["fatal"] = side["fatal"]
    # What kcompile left failing once ported: a failure Keras did not have, or one the
    # port changed (the same error as unmodified, e.g. the program's own `import
    # tensorflow`, fails on Keras too and is the environment's, not kcompile's; errors
    # compared as grouped, numbers aside).
    left = [
        i
        for i in failed
        if keras_side["statements"][i]["status"] == "ok"
        or _error_key(kc_side["statements"][i].get("error", ""))
        != _error_key(side["statements"][i].get("error", ""))
    ]
    result["left"] = len(left)
    if left:
        stmt = side["statements"][left[0]]
        result["first_failure"] = {"line": stmt["line"], "error": stmt["error"]}
    return result


def _run_program(program: Path, args: argparse.Namespace, cache: dict[str, Any]) -> dict[str, Any]:
    keras_side = _keras_side(program, args, cache)
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
    if program.stem in PORTS and args.ported:
        row["ported"] = _ported(program, args, keras_side, kc_side)
        p = row["ported"]
        status += f" | ported: failed {p['failed']}, left {p['left']}, ran {p['gained']} more, " + (
            "as far as Keras" if p["compare"]["as_far_as_keras"] else "not as far as Keras"
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
    parser.add_argument(
        "folder", type=Path, nargs="?", default=CORPUS, help=f"the programs (default {CORPUS})"
    )
    parser.add_argument("--keras-python", default="/work/kenv/bin/python")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per program and side")
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
        "--no-ported",
        dest="ported",
        action="store_false",
        help="skip the separate ported run of the programs in PORTS",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=STATE,
        help=f"where Keras's cached results and the last run's results live (default {STATE})",
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
        help="rewrite the report from the last run's results (in --state) without running",
    )
    args = parser.parse_args(argv)
    if not args.report_only and not list(args.folder.glob("*.py")):
        raise SystemExit(
            f"{args.folder} holds no programs: save each program benchmarks/corpus.json names "
            "there as <name>.py, exactly as published at the commit it names, after the two "
            "header lines (# source: ..., # license: ...); the repository keeps the list, "
            "not the programs"
        )
    args.state.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        meta = json.loads((args.state / "results_meta.json").read_text())
        rows = json.loads((args.state / "results.json").read_text())
        for row in rows:  # the sources' descriptions as the files now give them
            program = args.folder / f"{row['name']}.py"
            if program.exists():
                row["source"], row["kind"] = _source(program), _kind(program)
        _write_report(args.report, rows, meta, _history(args.state)[:-1])
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


def _history(state: Path) -> list[dict[str, Any]]:
    path = state / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run_all(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    programs = sorted(
        p for p in args.folder.glob("*.py") if not args.only or any(o in p.stem for o in args.only)
    )
    if not programs:
        parser.error(f"no programs in {args.folder}")
    cache_path = args.state / "keras_results.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    results_path = args.state / "results.json"
    partial = args.state / "results_partial.jsonl"  # each row as it comes (a run cut short)
    partial.write_text("")

    def run(program: Path) -> dict[str, Any]:
        row = _run_program_safely(program, args, cache)
        with _CACHE_LOCK, open(partial, "a") as out:
            out.write(json.dumps(row) + "\n")
        return row

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(run, programs))
    cache_path.write_text(json.dumps(cache, indent=1))
    if args.only and results_path.exists():  # a partial run updates its rows only
        ran = {r["name"] for r in rows}
        earlier = [r for r in json.loads(results_path.read_text()) if r["name"] not in ran]
        rows_to_save = sorted(earlier + rows, key=lambda r: r["name"])
    else:
        rows_to_save = rows
    results_path.write_text(json.dumps(rows_to_save, indent=1))
    ok = sum(r["compare"]["as_far_as_keras"] for r in rows)
    ported = [r for r in rows if "ported" in r]
    ported_ok = sum(r["ported"]["compare"]["as_far_as_keras"] for r in ported)
    print(f"{ok} of {len(rows)} programs run as far as on Keras")
    if ported:
        print(f"ported: {ported_ok} of {len(ported)} programs run as far as on Keras")
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
    (args.state / "results_meta.json").write_text(json.dumps(meta, indent=1))
    history = _history(args.state)
    with open(args.state / "history.jsonl", "a") as log:
        log.write(
            json.dumps(
                {
                    "date": meta["date"],
                    "commit": args.commit,
                    "programs": len(rows),
                    "ok": ok,
                    "ported": len(ported),
                    "ported_ok": ported_ok,
                }
            )
            + "\n"
        )
    _write_report(args.report, rows, meta, history)
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
