"""``keras.utils.get_file``: a file from a URL, kept in Keras's cache (``~/.keras`` or
``$KERAS_HOME``, subfolder ``cache_subdir``), checked against its hash (SHA-256, or MD5 by
its length), written atomically, extracted when asked (tar, tar.gz, zip), and reused
when it is already there and whole."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile


def keras_home() -> str:
    """Keras's cache: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` when that is not
    writable), as Keras chooses it."""
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    home = os.path.join(os.path.expanduser("~"), ".keras")
    parent = os.path.dirname(home)
    if not os.access(parent, os.W_OK) or (os.path.exists(home) and not os.access(home, os.W_OK)):
        return os.path.join(tempfile.gettempdir(), ".keras")
    return home


def file_hash(path: str, algorithm: str = "sha256") -> str:
    digest = hashlib.sha256() if algorithm == "sha256" else hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _algorithm(expected: str, hash_algorithm: str) -> str:
    if hash_algorithm in ("sha256", "md5"):
        return hash_algorithm
    return "sha256" if len(expected) == 64 else "md5"


def _matches(path: str, expected: str | None, hash_algorithm: str) -> bool:
    if expected is None:
        return True
    return file_hash(path, _algorithm(expected, hash_algorithm)) == expected


def get_file(
    fname: str | None = None,
    origin: str | None = None,
    untar: bool = False,
    md5_hash: str | None = None,
    file_hash: str | None = None,
    cache_subdir: str = "datasets",
    hash_algorithm: str = "auto",
    extract: bool = False,
    archive_format: str = "auto",
    cache_dir: str | None = None,
    force_download: bool = False,
) -> str:
    """The local path of ``fname`` (the folder it was extracted into, with ``extract``)."""
    if origin is None:
        raise ValueError('get_file: give the file\'s URL as origin="..."')
    expected = file_hash or md5_hash
    extract = extract or untar
    folder = os.path.join(cache_dir or keras_home(), cache_subdir)
    os.makedirs(folder, exist_ok=True)
    fname = fname or os.path.basename(urllib.request.urlparse(origin).path)
    archive = os.path.join(folder, os.path.basename(origin) if extract else fname)
    if os.path.exists(archive) and not force_download:
        if _matches(archive, expected, hash_algorithm):
            return _extracted(archive, folder, fname, archive_format) if extract else archive
        warnings.warn(
            f"{archive} does not match its expected hash (incomplete or outdated): "
            "downloading it again",
            stacklevel=2,
        )
    _download(origin, archive, expected, hash_algorithm)
    return _extracted(archive, folder, fname, archive_format) if extract else archive


def _download(origin: str, path: str, expected: str | None, hash_algorithm: str) -> None:
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(origin, timeout=60) as response:
            shutil.copyfileobj(response, out)
        if not _matches(partial, expected, hash_algorithm):
            raise ValueError(
                f"the file downloaded from {origin} does not match its expected hash "
                f"{expected}: it is corrupt or not the file Keras expects; nothing was kept"
            )
        os.replace(partial, path)
    except (urllib.error.URLError, OSError) as e:
        raise OSError(
            f"could not download {origin} ({e}); put the file at {path} (the cache Keras and "
            "kcompile read; $KERAS_HOME moves it) and call again"
        ) from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _extracted(archive: str, folder: str, fname: str, archive_format: str) -> str:
    """Extract ``archive`` once into ``folder/fname`` (a folder); its path."""
    target = os.path.join(folder, fname)
    if os.path.isdir(target) and os.listdir(target):
        return target
    staging = tempfile.mkdtemp(dir=folder, prefix=".extract-")
    try:
        if zipfile.is_zipfile(archive) and archive_format in ("auto", "zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging)
        elif tarfile.is_tarfile(archive) and archive_format in ("auto", "tar"):
            with tarfile.open(archive) as t:
                t.extractall(staging, filter="data")
        else:
            raise ValueError(f"{archive} is not a zip or tar archive")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return target
