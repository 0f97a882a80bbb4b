"""Reading IDX files (the MNIST family's format), gzipped or not."""

from __future__ import annotations

import gzip
import os

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: IDX header says {shape} ({expected} bytes), file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_files(folder_names: list[str], files: list[str], debian_package: str) -> list[str]:
    """Paths of ``files`` in the first place that has them all; a helpful error otherwise."""
    roots = []
    if os.environ.get("KCOMPILE_DATA"):
        roots.append(os.environ["KCOMPILE_DATA"])
    roots += ["/usr/share/datasets", os.path.expanduser("~/.keras/datasets")]
    tried = []
    for root in roots:
        for sub in [*folder_names, ""]:
            folder = os.path.join(root, sub) if sub else root
            tried.append(folder)
            for variant in (files, [f.removesuffix(".gz") for f in files]):
                paths = [os.path.join(folder, f) for f in variant]
                if all(os.path.exists(p) for p in paths):
                    return paths
    raise FileNotFoundError(
        f"dataset files {files} were not found in {tried}. Install them with "
        f"`apt-get install {debian_package}` (Debian/Ubuntu) or put the IDX files in a folder "
        "named by $KCOMPILE_DATA."
    )
