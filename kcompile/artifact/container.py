"""The artifact file: one zip holding a manifest and its members, each member's
sha256 in the manifest, written atomically.

Reading checks, before anything is used: that the file is a whole zip, that it
is a kcompile artifact of a format this version reads, and that every member
the manifest lists is present with its recorded checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib

import numpy as np

from kcompile.utils.atomic import atomic_write

FORMAT = "kcompile.artifact"
FORMAT_VERSION = 2  # 2: the manifest's own checksum, and every member's size
MANIFEST = "manifest.json"
MANIFEST_CHECKSUM = "manifest.sha256"
MAX_MANIFEST_BYTES = 16 << 20


class ArtifactError(ValueError):
    """An artifact that cannot be used: corrupt, from the future, or for another machine."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_artifact(path: str, manifest: dict, members: dict[str, bytes]) -> dict:
    """``manifest`` (its ``checksums`` and ``sizes`` filled in here, its own checksum in
    ``manifest.sha256``) and ``members`` to ``path``; returns the manifest as written."""
    manifest = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "checksums": {name: sha256(data) for name, data in members.items()},
        "sizes": {name: len(data) for name, data in members.items()},
    }
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, text)
        z.writestr(MANIFEST_CHECKSUM, sha256(text))
        for name, data in members.items():
            z.writestr(name, data)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return manifest


def read_artifact(path: str) -> tuple[dict, dict[str, bytes]]:
    """The manifest and the members of the artifact at ``path``, all checked: the zip,
    the format, the manifest's own checksum, every member's size (while it is read, so a
    member larger than declared is never read whole) and checksum."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if MANIFEST not in names:
                raise ArtifactError(f"{path}: not a kcompile artifact (no {MANIFEST})")
            text = _read_member(path, z, MANIFEST, MAX_MANIFEST_BYTES, exact=False)
            manifest = _parse_manifest(path, text)
            if manifest["format_version"] >= 2:
                _check_manifest_checksum(path, z, names, text)
            sizes = manifest.get("sizes", {})
            members = {
                name: _read_member(path, z, name, sizes.get(name), exact=name in sizes)
                for name in manifest["checksums"]
                if name in names
            }
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as e:
        raise ArtifactError(f"{path}: truncated or corrupt artifact ({e})") from None
    except FileNotFoundError:
        raise
    except (KeyError, OSError) as e:
        raise ArtifactError(f"{path}: unreadable artifact ({e})") from None
    for name, checksum in manifest["checksums"].items():
        if name not in members:
            raise ArtifactError(f"{path}: member {name!r} is missing")
        if sha256(members[name]) != checksum:
            raise ArtifactError(f"{path}: member {name!r} does not match its checksum (tampered?)")
    return manifest, members


def _read_member(path: str, z: zipfile.ZipFile, name: str, size: int | None, exact: bool):
    """A member's bytes, read no further than ``size`` (+1, to see a longer one)."""
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ArtifactError(f"{path}: the manifest gives member {name!r} the size {size!r}")
    declared = z.getinfo(name).file_size
    if size is not None and (declared > size if not exact else declared != size):
        raise ArtifactError(
            f"{path}: member {name!r} holds {declared} bytes, expected "
            f"{'at most ' if not exact else ''}{size}"
        )
    try:
        with z.open(name) as f:
            data = f.read(-1 if size is None else size + 1)
    except zlib.error as e:
        raise ArtifactError(f"{path}: member {name!r} is damaged ({e})") from None
    if size is not None and (len(data) > size or (exact and len(data) != size)):
        raise ArtifactError(f"{path}: member {name!r} is not {size} bytes long")
    return data


def _check_manifest_checksum(path: str, z: zipfile.ZipFile, names: set, text: bytes) -> None:
    if MANIFEST_CHECKSUM not in names:
        raise ArtifactError(f"{path}: member {MANIFEST_CHECKSUM!r} is missing")
    recorded = _read_member(path, z, MANIFEST_CHECKSUM, 64, exact=True).decode("ascii", "replace")
    if recorded != sha256(text):
        raise ArtifactError(
            f"{path}: member {MANIFEST!r} does not match its checksum (edited or damaged)"
        )


def _parse_manifest(path: str, text: bytes) -> dict:
    try:
        manifest = json.loads(text)
    except ValueError as e:
        raise ArtifactError(f"{path}: the manifest is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a kcompile artifact (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArtifactError(
            f"{path}: member {MANIFEST!r}: format_version must be a positive integer, "
            f"got {version!r}"
        )
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version} is newer than this kcompile reads "
            f"(up to {FORMAT_VERSION}); load it with a newer kcompile"
        )
    for key in ("checksums", "sizes") if version >= 2 else ("checksums",):
        if not isinstance(manifest.get(key), dict):
            raise ArtifactError(f"{path}: member {MANIFEST!r} has no {key}")
    return manifest


def npz_bytes(arrays: list[np.ndarray]) -> bytes:
    """``arrays`` as an ``.npz`` file's bytes (keys ``arr_0``, ``arr_1``, ...)."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    return buffer.getvalue()


def npz_arrays(data: bytes) -> list[np.ndarray]:
    """The arrays of ``npz_bytes``'s output, in order."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return [npz[f"arr_{i}"] for i in range(len(npz.files))]
