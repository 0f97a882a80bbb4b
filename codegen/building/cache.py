"""The on-disk cache of compiled object code.

Entries are keyed by the caller's key (the graph's text, the kcompile
version) plus a hash of the source the generated code depends on (codegen's
and ir's: slot order, memory plans and the ops' definitions live in ir), the
llvmlite version and the host CPU and features. Each file carries a
checksum of its payload; a truncated or corrupt entry is detected, removed
and rebuilt, never loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from kcompile.codegen.building.target import host

MAGIC = b"KCOBJ1\n"
_unusable: set[str] = set()  # cache folders already warned about


def source_roots() -> tuple[Path, ...]:
    """The packages whose source decides the generated code: codegen and the ir it lowers,
    its sibling folder (at the top of a checkout, inside ``kcompile`` when installed)."""
    here = Path(__file__).resolve().parent.parent  # codegen, above building/
    return (here, here.parent / "ir")


def source_digest(roots: tuple[Path, ...]) -> str:
    """A hash of every Python file under ``roots``, with its path, so that an edit, a
    new file or a renamed one changes it."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}".encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def codegen_digest() -> str:
    """The source digest of this installation, so that any change to the compiler's
    lowering or to the IR it reads misses the cache."""
    return source_digest(source_roots())


def cache_dir() -> Path | None:
    """``$KCOMPILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/kcompile``, else ``~/.cache/kcompile``;
    None when ``KCOMPILE_CACHE=0``."""
    if os.environ.get("KCOMPILE_CACHE", "1") == "0":
        return None
    if os.environ.get("KCOMPILE_CACHE_DIR"):
        return Path(os.environ["KCOMPILE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kcompile"


def cache_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in (codegen_digest(), host().fingerprint, *parts):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def read_entry(key: str) -> bytes | None:
    """The cached payload, or None if absent; a corrupt entry is deleted."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{key}.o"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header_end = len(MAGIC) + 65
    if data[: len(MAGIC)] == MAGIC and len(data) > header_end:
        checksum = data[len(MAGIC) : header_end - 1].decode("ascii", "replace")
        payload = data[header_end:]
        if hashlib.sha256(payload).hexdigest() == checksum:
            return payload
    with contextlib.suppress(OSError):  # rebuilt either way
        path.unlink(missing_ok=True)
    return None


# Locks striped over this many files in the cache folder (by the key's first hex digits):
# a bounded set of files, and two keys share one rarely.
LOCK_STRIPES = 256


@contextlib.contextmanager
def building(key: str) -> Iterator[None]:
    """Held while this process builds the entry ``key``: another process about to build
    the same entry (the ranks of a data-parallel job on one machine, test workers) waits,
    then finds it in the cache instead of compiling it again. A POSIX record lock: held by
    this process alone (not by children it forks meanwhile), released if it dies. Nothing
    to hold when the cache is off or its folder cannot be written."""
    folder = cache_dir()
    fd = None
    if folder is not None and str(folder) not in _unusable:
        stripe = int(key[:8], 16) % LOCK_STRIPES
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / f".lock-{stripe:03d}", os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.lockf(fd, fcntl.LOCK_EX)
        except OSError:
            if fd is not None:
                os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def write_entry(key: str, payload: bytes) -> None:
    """Store ``payload`` atomically; a cache folder that cannot be written (read-only, a
    file in its place) is warned about once and then left alone: compiling goes on."""
    folder = cache_dir()
    if folder is None or str(folder) in _unusable:
        return
    blob = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    except OSError as e:
        _unusable.add(str(folder))
        warnings.warn(
            f"kcompile: the compile cache {folder} cannot be written ({e.strerror or e}); "
            "compiling without it (set KCOMPILE_CACHE_DIR, or KCOMPILE_CACHE=0)",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, folder / f"{key}.o")
    except OSError:
        Path(tmp).unlink(missing_ok=True)
