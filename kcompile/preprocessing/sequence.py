"""``keras.preprocessing.sequence``: ``pad_sequences`` of ``keras.utils``."""

from kcompile.utils.data_utils import pad_sequences

__all__ = ["pad_sequences"]
