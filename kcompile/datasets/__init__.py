"""``keras.datasets``: Keras's datasets, from Keras's cache (``~/.keras/datasets``,
``$KERAS_HOME``) or a local package, else downloaded from Keras's URLs with Keras's
hash checks."""

from kcompile.datasets import (
    boston_housing,
    cifar10,
    cifar100,
    fashion_mnist,
    imdb,
    mnist,
    reuters,
)

__all__ = ["boston_housing", "cifar10", "cifar100", "fashion_mnist", "imdb", "mnist", "reuters"]
