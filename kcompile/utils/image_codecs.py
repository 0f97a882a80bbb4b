"""Reading and writing the image files kcompile handles without Pillow: PNG (8-bit
grayscale, grayscale with alpha, RGB, RGBA and palette images, not interlaced; zlib
from the standard library) and the Netpbm formats PGM and PPM (``P2``, ``P3``, ``P5``,
``P6``, maxval 255). Any other file is refused naming the file and its format, and
pointing at Pillow (``pip install pillow``), which ``keras.utils.load_img`` uses when it
is importable.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> (mode, channels)
_PNG_TYPES = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}
_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"RIFF": "WebP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


class UnsupportedImage(NotImplementedError):
    """An image file kcompile cannot read or write without Pillow."""


def refuse(path, what: str) -> UnsupportedImage:
    return UnsupportedImage(
        f"{path}: {what} is not supported without Pillow: kcompile reads and writes 8-bit "
        "PNG, PGM and PPM itself; install Pillow (pip install pillow) for other formats"
    )


def sniff(data: bytes) -> str:
    """The format's name from the file's first bytes ("PNG", "PNM", "JPEG", ...)."""
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data[:2] in (b"P2", b"P3", b"P5", b"P6"):
        return "PNM"
    for magic, name in _MAGIC.items():
        if data.startswith(magic):
            return name
    return "an unknown format"


def decode(data: bytes, path) -> tuple[np.ndarray, str]:
    """(pixels [H, W] or [H, W, C] uint8, mode: "L", "LA", "RGB" or "RGBA")."""
    kind = sniff(data)
    if kind == "PNG":
        return _decode_png(data, path)
    if kind == "PNM":
        return _decode_pnm(data, path)
    raise refuse(path, f"the {kind} format")


def encode(pixels: np.ndarray, mode: str, file_format: str, path) -> bytes:
    """The bytes of a PNG, PGM or PPM file of uint8 ``pixels`` in ``mode``."""
    fmt = file_format.lower()
    if fmt == "png" and mode in ("L", "LA", "RGB", "RGBA"):
        return _encode_png(pixels, mode)
    if fmt in ("ppm", "pgm", "pnm") and mode in ("L", "RGB"):
        magic = b"P5" if mode == "L" else b"P6"
        height, width = pixels.shape[:2]
        return b"%s\n%d %d\n255\n" % (magic, width, height) + pixels.astype(np.uint8).tobytes()
    what = f"writing a {mode} image as {file_format.upper()}"
    if fmt in ("png", "ppm", "pgm", "pnm"):
        what = f"writing an image of mode {mode} as {file_format.upper()}"
    raise refuse(path, what)


def _chunks(data: bytes, path):
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            return
    raise ValueError(f"{path}: the PNG file is truncated (no IEND chunk)")


def _decode_png(data: bytes, path) -> tuple[np.ndarray, str]:
    header, palette, alpha, compressed = None, None, None, []
    for kind, body in _chunks(data, path):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"tRNS":
            alpha = np.frombuffer(body, np.uint8)
        elif kind == b"IDAT":
            compressed.append(body)
    if header is None:
        raise ValueError(f"{path}: the PNG file has no IHDR chunk")
    width, height, depth, color, _, _, interlace = header
    packed = depth in (1, 2, 4) and color in (0, 3)  # several pixels a byte
    if color not in _PNG_TYPES or not (depth == 8 or packed):
        raise refuse(path, f"a PNG of bit depth {depth} and colour type {color}")
    if interlace:
        raise refuse(path, "an interlaced (Adam7) PNG")
    mode, channels = _PNG_TYPES[color]
    raw = np.frombuffer(zlib.decompress(b"".join(compressed)), np.uint8)
    if packed:
        stride = -(-width * depth // 8)
        rows = _unfilter(raw, height, stride, 1)
        bits = np.unpackbits(rows, axis=1).reshape(height, -1, depth)[:, :width]
        values = (bits * (1 << np.arange(depth - 1, -1, -1, dtype=np.uint8))).sum(-1)
        if color == 0:  # grayscale below 8 bits, scaled to 0..255 as PIL reads it
            values = values * (255 // ((1 << depth) - 1))
        pixels = values.astype(np.uint8)[..., None]
    else:
        pixels = _unfilter(raw, height, width * channels, channels)
        pixels = pixels.reshape(height, width, channels)
    if mode == "P":
        if palette is None:
            raise ValueError(f"{path}: a palette PNG without a PLTE chunk")
        index = pixels[..., 0]
        if alpha is None:
            return palette[index], "RGB"
        full = np.full(len(palette), 255, np.uint8)
        full[: len(alpha)] = alpha
        return np.concatenate([palette[index], full[index][..., None]], -1), "RGBA"
    return (pixels[..., 0] if channels == 1 else pixels), mode


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    """The scanlines with PNG's per-row filters (none, sub, up, average, Paeth) undone."""
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    previous = np.zeros(stride, np.int64)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if kind == 0:
            row = line
        elif kind == 1:  # each pixel adds the one to its left: a running sum per channel
            row = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:
            row = (line + previous) % 256
        elif kind in (3, 4):  # these read the pixel just decoded: one pixel at a time
            row = np.zeros(stride, np.int64)
            left = upper_left = np.zeros(bpp, np.int64)
            for x in range(0, stride, bpp):
                up = previous[x : x + bpp]
                if kind == 3:
                    guess = (left + up) // 2
                else:
                    guess = _paeth(left, up, upper_left)
                left = row[x : x + bpp] = (line[x : x + bpp] + guess) % 256
                upper_left = up
        else:
            raise ValueError(f"PNG filter type {kind} is not valid")
        out[y] = row
        previous = row.astype(np.int64)
    return out


def _encode_png(pixels: np.ndarray, mode: str) -> bytes:
    color = {"L": 0, "LA": 4, "RGB": 2, "RGBA": 6}[mode]
    height, width = pixels.shape[:2]
    rows = np.asarray(pixels, np.uint8).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _decode_pnm(data: bytes, path) -> tuple[np.ndarray, str]:
    magic = data[:2]
    fields, pos = [], 2
    while len(fields) < 3:  # width, height, maxval; '#' starts a comment
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        fields.append(int(data[pos:end]))
        pos = end
    width, height, maxval = fields
    if maxval != 255:
        raise refuse(path, f"a Netpbm file with maxval {maxval} (only 255)")
    channels = 1 if magic in (b"P2", b"P5") else 3
    count = width * height * channels
    if magic in (b"P5", b"P6"):
        values = np.frombuffer(data[pos + 1 : pos + 1 + count], np.uint8)
    else:
        values = np.array(data[pos:].split()[:count], dtype=np.int64).astype(np.uint8)
    if values.size != count:
        raise ValueError(f"{path}: the Netpbm file is truncated")
    pixels = values.reshape(height, width, channels)
    return (pixels[..., 0], "L") if channels == 1 else (pixels, "RGB")


def suffix_format(path) -> str | None:
    suffix = Path(str(path)).suffix[1:].lower()
    return suffix or None
