"""The on-disk compile cache: hit, miss on a changed graph, corrupt entries rebuilt."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from kcompile.codegen.building.cache import cache_dir, source_digest, source_roots
from kcompile.codegen.library.runtime_library import runtime
from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from kcompile.runtime.native import NativeExecutable


def graph(scale: float) -> Graph:
    g = Graph("cached")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 5)), "data")
    g.set_outputs([("y", B.tanh(x) * scale)])
    return g


@pytest.fixture
def cache(tmp_path, monkeypatch):
    runtime()  # loaded once per process: its entry goes to the cache in use before
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(exe) -> np.ndarray:
    return np.array(exe({"x": np.ones((2, 5), np.float32)})["y"])


def test_hit_miss_and_corrupt_entry(cache):
    first = NativeExecutable(graph(2.0), "test")
    assert not first.cache_hit and len(list(cache.glob("*.o"))) == 1
    again = NativeExecutable(graph(2.0), "test")
    assert again.cache_hit
    np.testing.assert_array_equal(run(first), run(again))
    changed = NativeExecutable(graph(3.0), "test")
    assert not changed.cache_hit and len(list(cache.glob("*.o"))) == 2
    other_version = NativeExecutable(graph(2.0), "test-2")
    assert not other_version.cache_hit
    for entry in cache.glob("*.o"):
        entry.write_bytes(entry.read_bytes()[:-100])  # truncate every entry
    rebuilt = NativeExecutable(graph(2.0), "test")
    assert not rebuilt.cache_hit
    np.testing.assert_allclose(run(rebuilt), 2.0 * np.tanh(1.0), rtol=1e-6)
    assert NativeExecutable(graph(2.0), "test").cache_hit  # the rebuilt entry is good


def test_garbage_entry_is_not_loaded(cache):
    NativeExecutable(graph(4.0), "test")
    (entry,) = cache.glob("*.o")
    entry.write_bytes(b"KCOBJ1\n" + b"0" * 64 + b"\n" + b"not object code")
    exe = NativeExecutable(graph(4.0), "test")
    assert not exe.cache_hit
    np.testing.assert_allclose(run(exe), 4.0 * np.tanh(1.0), rtol=1e-6)


def test_cache_can_be_disabled(monkeypatch, tmp_path):
    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    assert cache_dir() is None
    exe = NativeExecutable(graph(5.0), "test")
    assert not exe.cache_hit
    assert not NativeExecutable(graph(5.0), "test").cache_hit


def test_an_unusable_cache_location_warns_once_and_compiles(tmp_path, monkeypatch):
    from kcompile.codegen.building import cache as cache_module

    runtime()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(cache_module, "_unusable", set())
    with pytest.warns(RuntimeWarning, match="cannot be written") as caught:
        first = run(NativeExecutable(graph(3.0), version="t"))
        second = run(NativeExecutable(graph(4.0), version="t"))
    assert len([w for w in caught if "cannot be written" in str(w.message)]) == 1
    np.testing.assert_allclose(first * 4, second * 3, rtol=1e-6)


def test_the_key_covers_every_source_the_generated_code_depends_on():
    exe = NativeExecutable(graph(6.0), "test")
    run(exe)
    covered = {p.resolve() for root in source_roots() for p in root.rglob("*.py")}
    loaded = {
        Path(module.__file__).resolve()
        for name, module in list(sys.modules.items())
        if name.startswith(("kcompile.ir", "kcompile.codegen"))
        and getattr(module, "__file__", None)
    }
    assert loaded and loaded <= covered
    for name in ("buffers.py", "memory.py", "registry.py"):
        assert any(p.name == name and p.parent.name == "ir" for p in covered)
    assert any(p.parent.name == "ops" for p in covered)


def test_an_edit_to_any_covered_file_changes_the_key(tmp_path):
    roots = []
    for root in source_roots():
        copy = tmp_path / root.name
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
        roots.append(copy)
    roots = tuple(roots)
    before = source_digest(roots)
    files = [p for root in roots for p in sorted(root.rglob("*.py"))]
    assert len(files) > 40
    for path in files:
        text = path.read_bytes()
        path.write_bytes(text + b"\n# edited\n")
        assert source_digest(roots) != before, path
        path.write_bytes(text)
    assert source_digest(roots) == before
    (roots[1] / "ops" / "new_op.py").write_text("# a new module\n")
    assert source_digest(roots) != before


def test_the_runtime_library_builds_in_a_child_while_the_model_compiles(tmp_path):
    """With an empty cache, compiling a model first forks a child that builds the
    runtime library into the cache; the process then loads the child's entry (a cache
    hit) and the library works."""
    import subprocess

    script = (
        "import numpy as np\n"
        "import importlib\n"
        "r = importlib.import_module('kcompile.codegen.library.runtime_library')\n"
        "r.build_ahead()\n"
        "assert r._builder is not None, 'no child was started'\n"
        "rt = r.runtime()\n"
        "assert rt.cache_hit and r._builder is None\n"
        "a = np.arange(6, dtype=np.float32).reshape(2, 3); c = np.empty((2, 2), np.float32)\n"
        "rt.sgemm(a, a.T.copy(), c)\n"
        "assert np.allclose(c, a @ a.T)\n"
        "r.build_ahead()\n"
        "assert r._builder is None  # loaded: nothing more to build\n"
    )
    env = {**__import__("os").environ, "KCOMPILE_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob("*.o"))) == 1


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_compile_cache import graph
from kcompile.runtime.native import NativeExecutable
print("ready", flush=True)
print("hit" if NativeExecutable(graph(4.0), "test").cache_hit else "compiled", flush=True)
"""


def test_a_process_waits_for_another_building_the_same_code_and_reads_it(cache):
    """While a process builds an entry (``codegen.building.cache.building``), another about to build
    the same one waits, then reads it from the cache: the ranks of a job on one machine
    (and test workers) compile a model once. Here this process holds every lock stripe,
    builds the entry, then lets go: the child, waiting all along, finds it built."""
    import contextlib
    import fcntl
    import os
    import subprocess

    from kcompile.codegen.building.cache import LOCK_STRIPES

    cache.mkdir(parents=True, exist_ok=True)
    fds = [os.open(cache / f".lock-{s:03d}", os.O_CREAT | os.O_RDWR) for s in range(LOCK_STRIPES)]
    for fd in fds:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(Path(__file__).parent))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=2.0)  # compiling this graph takes well under that
        assert child.poll() is None, "the child compiled while the locks were held"
        built = NativeExecutable(graph(4.0), "test")  # the same lock: held by this process
        assert not built.cache_hit
    finally:
        for fd in fds:
            os.close(fd)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0
    assert out.strip() == "hit"
