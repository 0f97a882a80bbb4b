"""Loading an artifact's native code: its shared libraries with ctypes, or (artifacts
built where no C compiler was found) its object code with ``kcompile.artifact.elf``."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable

from kcompile.artifact.container import ArtifactError
from kcompile.artifact.elf import ElfError, LoadedObject, system_symbol

STEPS = ("train", "eval", "predict")
# Runtimes loaded so far, by a name of their content (a shared library's file name, an
# object's hash): one thread pool per distinct runtime however many artifacts use it.
_LIBRARIES: dict[str, object] = {}
_RUNTIMES: dict[str, Callable[[int], None]] = {}  # the same names: each one's thread setting


def load_code(path: str, manifest: dict, members: dict[str, bytes]) -> dict:
    """kind -> (entry address, epoch address or 0, what keeps the code loaded)."""
    library = manifest["library"]
    if library["kind"] == "object":
        try:
            return _load_objects(manifest, members)
        except (ElfError, OSError) as e:
            raise ArtifactError(f"{path}: its object code does not load ({e})") from None
    folder = tempfile.mkdtemp(prefix="kcompile-artifact-")
    try:
        files = {}
        for name in [library["runtime"], *(manifest["steps"][k]["code"] for k in STEPS)]:
            files[name] = os.path.join(folder, os.path.basename(name))
            with open(files[name], "wb") as f:
                f.write(members[name])
        runtime = _runtime(files[library["runtime"]])
        out = {}
        for kind in STEPS:
            lib = ctypes.CDLL(files[manifest["steps"][kind]["code"]])
            entry = ctypes.cast(lib.kc_entry, ctypes.c_void_p).value
            epoch = (
                ctypes.cast(lib.kc_epoch, ctypes.c_void_p).value if hasattr(lib, "kc_epoch") else 0
            )
            out[kind] = (entry, epoch, (lib, runtime))
        return out
    except OSError as e:
        raise ArtifactError(f"{path}: its shared libraries do not load ({e})") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # mapped libraries outlive their files


def _runtime(path: str) -> ctypes.CDLL:
    """The runtime library at ``path``, or the one of the same name loaded before (the
    step libraries find it by its soname, the same file name)."""
    name = os.path.basename(path)
    if name not in _RUNTIMES:
        runtime = ctypes.CDLL(path)
        _RUNTIMES[name] = _started(ctypes.cast(runtime.kc_set_threads, ctypes.c_void_p).value)
        _LIBRARIES[name] = runtime
    return _LIBRARIES[name]


def _started(set_threads: int) -> Callable[[int], None]:
    """The runtime's thread setting (``kc_set_threads`` at this address), after setting
    it to the default."""
    setter = ctypes.CFUNCTYPE(None, ctypes.c_int32)(set_threads)
    setter(_default_threads())
    return setter


def _load_objects(manifest: dict, members: dict[str, bytes]) -> dict:
    """Object code (built where no linker was found), placed in memory and linked here
    (``kcompile.artifact.elf``): the runtime's object first, then each step's, whose
    calls into the runtime and the C library are resolved against them."""
    code = members[manifest["library"]["runtime"]]
    key = f"object-{hashlib.sha256(code).hexdigest()[:12]}"
    if key not in _LIBRARIES:
        runtime = LoadedObject(code, system_symbol, "runtime.o")
        _RUNTIMES[key] = _started(runtime.address("kc_set_threads"))
        _LIBRARIES[key] = runtime
    runtime = _LIBRARIES[key]

    def resolve(name: str) -> int:
        return runtime.address(name) if runtime.has(name) else system_symbol(name)

    out = {}
    for kind in STEPS:
        step = LoadedObject(members[manifest["steps"][kind]["code"]], resolve, f"{kind}.o")
        epoch = step.address("kc_epoch") if step.has("kc_epoch") else 0
        out[kind] = (step.address("kc_entry"), epoch, (step, runtime))
    return out


def _default_threads() -> int:
    """``$KCOMPILE_NUM_THREADS``, else the cores this process may run on."""
    setting = os.environ.get("KCOMPILE_NUM_THREADS")
    if setting and setting.isdigit() and int(setting) > 0:
        return int(setting)
    return len(os.sched_getaffinity(0))


def set_threads(count: int) -> None:
    """Threads of every loaded artifact's runtime."""
    for setter in _RUNTIMES.values():
        setter(count)
