"""Keras's ``TextVectorization``, on the host: standardize, split, n-grams, then a
StringLookup."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from kcompile.layers.preprocessing.host_layer import HostLayer
from kcompile.layers.preprocessing.index_lookup import adapt_batches, encode
from kcompile.layers.preprocessing.string_lookup import StringLookup

# TextVectorization's punctuation (Keras's DEFAULT_STRIP_REGEX; ",-." is a range).
STRIP_PUNCTUATION = re.compile(r"""[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']""")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")


class TextVectorization(HostLayer):
    """Keras's TextVectorization on the host: standardize (ASCII lowercase, strip
    punctuation; a callable gets a numpy array of strings, as Keras gives it off
    TensorFlow), split (whitespace, characters; a callable gets each string), n-grams,
    then a StringLookup with the empty string as mask token; ``int`` output is padded with
    0 (or cut) to ``output_sequence_length``, or to the longest row."""

    def __init__(
        self,
        max_tokens: int | None = None,
        standardize: Any = "lower_and_strip_punctuation",
        split: Any = "whitespace",
        ngrams: int | tuple | None = None,
        output_mode: str = "int",
        output_sequence_length: int | None = None,
        pad_to_max_tokens: bool = False,
        vocabulary: Any = None,
        idf_weights: Any = None,
        sparse: bool = False,
        ragged: bool = False,
        encoding: str = "utf-8",
        name: str | None = None,
        vocabulary_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        if standardize not in (
            None,
            "lower_and_strip_punctuation",
            "lower",
            "strip_punctuation",
        ) and not callable(standardize):
            raise ValueError(
                "Invalid value for argument standardize. Expected one of "
                "('lower_and_strip_punctuation', 'lower', 'strip_punctuation'), None or a "
                f"callable. Received: standardize={standardize}"
            )
        if split not in (None, "whitespace", "character") and not callable(split):
            raise ValueError(
                "Invalid value for argument split. Expected one of ('whitespace', "
                f"'character'), None or a callable. Received: split={split}"
            )
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if not (
            ngrams is None
            or isinstance(ngrams, int)
            or (isinstance(ngrams, tuple) and all(isinstance(n, int) for n in ngrams))
        ):
            raise ValueError(
                f"`ngrams` must be None, an integer, or a tuple of integers. Received: ngrams={ngrams}"
            )
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError(
                "`output_sequence_length` must not be set if `output_mode` is not 'int'. "
                f"Received output_sequence_length={output_sequence_length}."
            )
        if ragged:
            raise NotImplementedError(f"TextVectorization '{name}': ragged outputs")
        super().__init__(name=name, **kwargs)
        self.standardize, self.split = standardize, split
        self.ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self._ngrams_arg = ngrams
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self._lookup = StringLookup(
            max_tokens=max_tokens,
            vocabulary=vocabulary,
            idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens,
            mask_token="" if output_mode == "int" else None,
            output_mode=output_mode,
            encoding=encoding,
            name=f"{self.name}_lookup",
            vocabulary_size=vocabulary_size,  # (a file's: its asset holds the vocabulary)
        )
        self.encoding = encoding

    def _tokens(self, text: Any) -> list[str]:
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.translate(_ASCII_LOWER)  # tf.strings.lower: ASCII letters only
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = STRIP_PUNCTUATION.sub("", text)
        if self.split == "whitespace":
            tokens = [t for t in _WHITESPACE.split(text) if t]
        elif self.split == "character":
            tokens = list(text)
        elif callable(self.split):
            tokens = list(self.split(text))
        else:
            tokens = [text]
        if self.ngrams is None:
            return tokens
        return [
            " ".join(tokens[i : i + n]) for n in self.ngrams for i in range(len(tokens) - n + 1)
        ]

    def _token_lists(self, data: Any) -> list[list[str]]:
        array = np.asarray(data, dtype=object)
        if array.ndim > 1:
            if array.shape[-1] != 1:
                raise ValueError(
                    "When using `TextVectorization` to tokenize strings, the input rank must "
                    "be 1 or the last shape dimension must be 1. Received: "
                    f"inputs.shape={array.shape} with rank={array.ndim}"
                )
            array = array.reshape(array.shape[:-1])
        if callable(self.standardize):  # Keras (not on TensorFlow): a numpy string array
            texts = np.array(
                [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in array.ravel()]
            )
            array = np.asarray(self.standardize(texts.reshape(array.shape)), dtype=object)
        if array.ndim == 0:
            return [self._tokens(array.item())]
        return [self._tokens(t) for t in array.ravel()]

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        batches = adapt_batches(data)
        if steps is not None:
            batches = (b for i, b in zip(range(steps), batches))
        self._lookup._adapt_rows(row for batch in batches for row in self._token_lists(batch))

    def host_call(self, data: Any) -> np.ndarray:
        rows = self._token_lists(data)
        if self.output_mode != "int":
            ids = [self._lookup._ids_of(np.array(r, dtype=object)) for r in rows]
            depth = self._lookup._depth()
            return (
                np.stack([encode(i, self.output_mode, depth, self._lookup._idf) for i in ids])
                if rows
                else np.zeros((0, depth), np.float32)
            )
        width = self.output_sequence_length
        if width is None:
            width = max((len(r) for r in rows), default=0)
        out = np.zeros((len(rows), width), np.int64)
        for k, row in enumerate(rows):
            ids = self._lookup._ids_of(np.array(row[:width], dtype=object))
            out[k, : len(ids)] = ids
        return out

    def output_spec(self, shape: tuple) -> tuple[tuple, str]:
        if self.output_mode == "int":
            if self.output_sequence_length is None:
                raise NotImplementedError(
                    f"TextVectorization '{self.name}' in a model needs "
                    "output_sequence_length (the compiled step takes a fixed length)"
                )
            return (shape[0], self.output_sequence_length), "int32"
        return (shape[0], self._lookup._depth()), "float32"

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        return self._lookup.get_vocabulary(include_special_tokens)

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        self._lookup.set_vocabulary(vocabulary, idf_weights)

    def vocabulary_size(self) -> int:
        return self._lookup.vocabulary_size()

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_tokens": self._lookup.max_tokens,
            "standardize": self.standardize,
            "split": self.split,
            "ngrams": self._ngrams_arg,
            "output_mode": self.output_mode,
            "output_sequence_length": self.output_sequence_length,
            "pad_to_max_tokens": self._lookup.pad_to_max_tokens,
            "vocabulary": self.get_vocabulary(include_special_tokens=False) or None,
        }

    # --- Keras's .keras files: the lookup's config keys and its vocabulary asset ----------

    def keras_config(self) -> dict[str, Any]:
        lookup = self._lookup.keras_config()
        return {
            **self.get_config(),
            "sparse": False,
            "ragged": False,
            "vocabulary": lookup["vocabulary"],
            "idf_weights": lookup["idf_weights"],
            "encoding": self.encoding,
            "vocabulary_size": self.vocabulary_size(),
        }

    def save_assets(self, dir_path: str) -> None:
        self._lookup.save_assets(dir_path)

    def load_assets(self, dir_path: str) -> None:
        self._lookup.load_assets(dir_path)
