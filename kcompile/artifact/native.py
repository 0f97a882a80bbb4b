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
from kcompile.ir import abi

STEPS = ("train", "eval", "predict")  # every artifact's; newer ones add grad and apply
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
        for name in [library["runtime"], *(step["code"] for step in manifest["steps"].values())]:
            files[name] = os.path.join(folder, os.path.basename(name))
            with open(files[name], "wb") as f:
                f.write(members[name])
        runtime = _runtime(files[library["runtime"]])
        out = {}
        for kind in manifest["steps"]:
            lib = ctypes.CDLL(files[manifest["steps"][kind]["code"]])
            entry = _address(lib, abi.ENTRY)
            epoch = _address(lib, abi.EPOCH) if hasattr(lib, abi.EPOCH.symbol) else 0
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
        _RUNTIMES[name] = _started(_address(runtime, abi.SET_THREADS))
        _LIBRARIES[name] = runtime
        _hook_into(runtime)
    return _LIBRARIES[name]


def _started(set_threads: int) -> Callable[[int], None]:
    """The runtime's thread setting (``kc_set_threads`` at this address), after setting
    it to the default."""
    setter = abi.bind(abi.SET_THREADS, set_threads)
    setter(abi.default_threads())
    return setter


def _load_objects(manifest: dict, members: dict[str, bytes]) -> dict:
    """Object code (built where no linker was found), placed in memory and linked here
    (``kcompile.artifact.elf``): the runtime's object first, then each step's, whose
    calls into the runtime and the C library are resolved against them."""
    code = members[manifest["library"]["runtime"]]
    key = f"object-{hashlib.sha256(code).hexdigest()[:12]}"
    if key not in _LIBRARIES:
        runtime = LoadedObject(code, system_symbol, "runtime.o")
        _RUNTIMES[key] = _started(runtime.address(abi.SET_THREADS.symbol))
        _LIBRARIES[key] = runtime
        _hook_into(runtime)
    runtime = _LIBRARIES[key]

    def resolve(name: str) -> int:
        return runtime.address(name) if runtime.has(name) else system_symbol(name)

    out = {}
    for kind in manifest["steps"]:
        step = LoadedObject(members[manifest["steps"][kind]["code"]], resolve, f"{kind}.o")
        epoch = step.address(abi.EPOCH.symbol) if step.has(abi.EPOCH.symbol) else 0
        out[kind] = (step.address(abi.ENTRY.symbol), epoch, (step, runtime))
    return out


def _address(library: ctypes.CDLL, signature: abi.Signature) -> int:
    return ctypes.cast(getattr(library, signature.symbol), ctypes.c_void_p).value


_REPLICA_HOOK: list[int] = []  # the data-parallel job's hook, for runtimes loaded later


def set_replica_hook(address: int) -> None:
    """The replica hook (``kcompile.distribution.hooks``) of every loaded artifact's
    runtime, and of those loaded from now on (runtimes built before it existed lack it:
    their artifacts hold no ``replica_sum``)."""
    _REPLICA_HOOK[:] = [address]
    for library in _LIBRARIES.values():
        _hook_into(library)


def _hook_into(library) -> None:
    if not _REPLICA_HOOK:
        return
    symbol = abi.SET_REPLICA_HOOK.symbol
    if isinstance(library, ctypes.CDLL):
        if hasattr(library, symbol):
            abi.bind(abi.SET_REPLICA_HOOK, _address(library, abi.SET_REPLICA_HOOK))(
                _REPLICA_HOOK[0]
            )
    elif library.has(symbol):
        abi.bind(abi.SET_REPLICA_HOOK, library.address(symbol))(_REPLICA_HOOK[0])


def set_threads(count: int) -> None:
    """Threads of every loaded artifact's runtime."""
    for setter in _RUNTIMES.values():
        setter(count)
