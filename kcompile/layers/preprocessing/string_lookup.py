"""Keras's ``StringLookup``, on the host."""

from __future__ import annotations

from typing import Any

from kcompile.layers.preprocessing.index_lookup import IndexLookup


class StringLookup(IndexLookup):
    """Keras's StringLookup: strings to token ids (or encodings), on the host."""

    def __init__(
        self,
        max_tokens: int | None = None,
        num_oov_indices: int = 1,
        mask_token: str | None = None,
        oov_token: str = "[UNK]",
        vocabulary: Any = None,
        idf_weights: Any = None,
        invert: bool = False,
        output_mode: str = "int",
        pad_to_max_tokens: bool = False,
        sparse: bool = False,
        encoding: str = "utf-8",
        name: str | None = None,
        oov_method: str = "floormod",
        salt: Any = None,
        vocabulary_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.encoding = encoding
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

    def _token(self, t: Any) -> str:
        return t.decode(self.encoding) if isinstance(t, bytes) else str(t)

    def keras_config(self) -> dict[str, Any]:
        return {**super().keras_config(), "encoding": self.encoding}
