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

import numpy as np

from kcompile.files import atomic_write

FORMAT = "kcompile.artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """An artifact that cannot be used: corrupt, from the future, or for another machine."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_artifact(path: str, manifest: dict, members: dict[str, bytes]) -> dict:
    """``manifest`` (its ``checksums`` filled in here) and ``members`` to ``path``;
    returns the manifest as written."""
    manifest = {**manifest, "checksums": {name: sha256(data) for name, data in members.items()}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in members.items():
            z.writestr(name, data)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return manifest


def read_artifact(path: str) -> tuple[dict, dict[str, bytes]]:
    """The manifest and the members of the artifact at ``path``, all checked."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if MANIFEST not in names:
                raise ArtifactError(f"{path}: not a kcompile artifact (no {MANIFEST})")
            manifest = _parse_manifest(path, z.read(MANIFEST))
            members = {name: z.read(name) for name in manifest["checksums"] if name in names}
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


def _parse_manifest(path: str, text: bytes) -> dict:
    try:
        manifest = json.loads(text)
    except ValueError as e:
        raise ArtifactError(f"{path}: the manifest is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a kcompile artifact (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version} is newer than this kcompile reads "
            f"(up to {FORMAT_VERSION}); load it with a newer kcompile"
        )
    if not isinstance(manifest.get("checksums"), dict):
        raise ArtifactError(f"{path}: the manifest has no checksums")
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
