"""Loading an artifact's native code: its shared libraries with ctypes, or (artifacts
built without a linker) its object code through llvmlite's JIT linker."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile

from kcompile.artifact.container import ArtifactError

STEPS = ("train", "eval", "predict")
# Runtime libraries loaded so far, by file name (which names their content): one
# thread pool per distinct runtime however many artifacts use it.
_RUNTIMES: dict[str, ctypes.CDLL] = {}


def load_code(path: str, manifest: dict, members: dict[str, bytes]) -> dict:
    """kind -> (entry address, epoch address or 0, what keeps the code loaded)."""
    library = manifest["library"]
    if library["kind"] == "object":
        return _load_objects(path, manifest, members)
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
        runtime.kc_set_threads.argtypes = [ctypes.c_int32]
        runtime.kc_set_threads(_default_threads())
        _RUNTIMES[name] = runtime
    return _RUNTIMES[name]


def _load_objects(path: str, manifest: dict, members: dict[str, bytes]) -> dict:
    """Object code (built where no linker was found) loads through llvmlite's JIT
    linker, into the process's own runtime: it must be the same codegen's."""
    try:
        from codegen.cache import codegen_digest
        from codegen.runtime import runtime
        from codegen.target import LoadedCode
    except ImportError as e:
        raise ArtifactError(
            f"{path}: holds object code, which needs llvmlite to load ({e}); build it where "
            "a C compiler (cc) is installed to get shared libraries"
        ) from None
    if manifest["codegen"] != codegen_digest():
        raise ArtifactError(
            f"{path}: its object code was built by another kcompile codegen "
            f"({manifest['codegen']}, this one is {codegen_digest()}); rebuild it"
        )
    runtime()
    out = {}
    for kind in STEPS:
        code = LoadedCode(members[manifest["steps"][kind]["code"]])
        try:
            epoch = code.address("kc_epoch")
        except RuntimeError:  # a step without batched data has no epoch loop
            epoch = 0
        out[kind] = (code.address("kc_entry"), epoch, code)
    return out


def _default_threads() -> int:
    """``$KCOMPILE_NUM_THREADS``, else the cores this process may run on."""
    setting = os.environ.get("KCOMPILE_NUM_THREADS")
    if setting and setting.isdigit() and int(setting) > 0:
        return int(setting)
    return len(os.sched_getaffinity(0))


def set_threads(count: int) -> None:
    """Threads of every loaded artifact's runtime."""
    for runtime in _RUNTIMES.values():
        runtime.kc_set_threads(count)
