"""Makes ``tests/keras_fixtures/images/``: small PNG, PGM and PPM files written by
Pillow (13.0), and ``images.npz``, what Pillow reads from them, converts them to and
resizes them to (nearest, with and without a box), for the tests of kcompile's own
codecs and conversions, which must give Pillow's numbers without Pillow.

    python -m venv /tmp/pilenv && /tmp/pilenv/bin/pip install pillow numpy
    /tmp/pilenv/bin/python tests/fixture_scripts/make_image_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "keras_fixtures" / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(11)
    smooth = np.add.outer(np.arange(7) * 9, np.arange(5) * 20).astype(np.uint8)
    images = {
        "gray": Image.fromarray(smooth, "L"),
        "rgb": Image.fromarray(rng.integers(0, 256, (7, 5, 3), dtype=np.uint8), "RGB"),
        "rgba": Image.fromarray(rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), "RGBA"),
        "la": Image.fromarray(rng.integers(0, 256, (7, 5, 2), dtype=np.uint8), "LA"),
        "smooth_rgb": Image.fromarray(
            np.stack([smooth, smooth[::-1], smooth.T[:, ::-1].T], -1), "RGB"
        ),
    }
    palette = images["rgb"].convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    arrays: dict[str, np.ndarray] = {}
    for name, img in {**images, "palette": palette}.items():
        img.save(OUT / f"{name}.png")
        read = Image.open(OUT / f"{name}.png")
        mode = read.mode
        if mode == "P":  # kcompile reads a palette image as its colours
            mode = "RGBA" if "transparency" in read.info else "RGB"
        arrays[f"{name}/read"] = np.asarray(read.convert(mode))
        for mode in ("L", "RGB", "RGBA"):
            arrays[f"{name}/{mode}"] = np.asarray(read.convert(mode))
        rgb = read.convert("RGB")
        arrays[f"{name}/resize"] = np.asarray(rgb.resize((3, 11), Image.Resampling.NEAREST))
        arrays[f"{name}/resize_box"] = np.asarray(
            rgb.resize((4, 4), Image.Resampling.NEAREST, box=[1, 2, 4, 6])
        )
    images["gray"].save(OUT / "gray.pgm")
    images["rgb"].save(OUT / "rgb.ppm")
    images["rgb"].save(OUT / "rgb.jpg")  # a format kcompile refuses without Pillow
    np.savez(OUT / "images.npz", **arrays)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
