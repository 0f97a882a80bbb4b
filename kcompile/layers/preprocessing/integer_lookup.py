"""Keras's ``IntegerLookup``, on the host."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.layers.preprocessing.index_lookup import IndexLookup


class IntegerLookup(IndexLookup):
    """Keras's IntegerLookup: integers to token ids (or encodings), on the host; several
    OOV indices take ``value mod num_oov_indices`` (Keras's floormod)."""

    def __init__(
        self,
        max_tokens: int | None = None,
        num_oov_indices: int = 1,
        mask_token: int | None = None,
        oov_token: int = -1,
        vocabulary: Any = None,
        vocabulary_dtype: str = "int64",
        idf_weights: Any = None,
        invert: bool = False,
        output_mode: str = "int",
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        name: str | None = None,
        oov_method: str = "floormod",
        salt: Any = None,
        vocabulary_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        if max_tokens is not None and max_tokens <= 0:
            raise ValueError(
                f"If `max_tokens` is set for `IntegerLookup`, it must be greater than 1. "
                f"Received: max_tokens={max_tokens}"
            )
        self.vocabulary_dtype = vocabulary_dtype
        super().__init__(
            max_tokens,
            num_oov_indices,
            mask_token,
            oov_token,
            vocabulary,
            idf_weights,
            invert,
            output_mode,
            sparse,
            pad_to_max_tokens,
            oov_method,
            salt,
            name=name,
            vocabulary_size=vocabulary_size,
            **kwargs,
        )

    def _token(self, t: Any) -> int:
        return int(t)

    def _oov_bucket(self, tokens: np.ndarray) -> np.ndarray:
        return np.mod(tokens.astype(np.int64), self.num_oov_indices)

    def _token_dtype(self) -> Any:
        return np.int64

    def keras_config(self) -> dict[str, Any]:
        return {**super().keras_config(), "vocabulary_dtype": self.vocabulary_dtype}
