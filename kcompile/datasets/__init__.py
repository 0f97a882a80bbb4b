"""Datasets read from local files (no downloads)."""

from kcompile.datasets import fashion_mnist, mnist

__all__ = ["fashion_mnist", "mnist"]
