"""Keras 3's ``IndexLookup`` (``keras/src/layers/preprocessing/index_lookup.py``), the
base of StringLookup and IntegerLookup, on the host: vocabulary ordered by count then
token (both descending), the mask token at index 0, then the OOV indices, ``max_tokens``
counting them all; ``int``, ``one_hot``, ``multi_hot``, ``count`` and ``tf_idf``
outputs (``encode``).

In Keras's ``.keras`` files an adapted layer's vocabulary is not in its config but an
asset, ``vocabulary.txt`` (one token a line, the special tokens first) in the folder of
the layer's path (``save_assets``/``load_assets``); its config says the vocabulary's size
(``vocabulary_size``), which the layer takes for its output's width until the file's
vocabulary is set.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from kcompile.layers.preprocessing.host_layer import HostLayer

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


def adapt_batches(data: Any) -> Iterable:
    """adapt's data: an array or list (one batch, a 1-D one as a column, as Keras), or
    an iterable of batches (a generator, a PyDataset, a list of arrays' iterator)."""
    if isinstance(data, np.ndarray | list | tuple | str):
        array = np.asarray(data, dtype=object)
        return [array.reshape(-1, 1) if array.ndim == 1 else array]
    return (b[0] if isinstance(b, tuple) else b for b in data)


class IndexLookup(HostLayer):
    def __init__(
        self,
        max_tokens: int | None,
        num_oov_indices: int,
        mask_token: Any,
        oov_token: Any,
        vocabulary: Any = None,
        idf_weights: Any = None,
        invert: bool = False,
        output_mode: str = "int",
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        oov_method: str = "floormod",
        salt: Any = None,
        **kwargs: Any,
    ) -> None:
        # Keras's config says the vocabulary's size, which a file's asset then holds.
        frozen_size = kwargs.pop("vocabulary_size", None)
        super().__init__(**kwargs)
        self._frozen_vocab_size = None if frozen_size is None else int(frozen_size)
        self.oov_method, self.salt = _oov_hashing(oov_method, salt, num_oov_indices, self)
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(
                f"If set, `max_tokens` must be greater than 1. Received: max_tokens={max_tokens}"
            )
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(
                "If pad_to_max_tokens is True, must set `max_tokens`. "
                f"Received: max_tokens={max_tokens}"
            )
        if num_oov_indices < 0:
            raise ValueError(
                "`num_oov_indices` must be greater than or equal to 0. "
                f"Received: num_oov_indices={num_oov_indices}"
            )
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in OUTPUT_MODES:
            raise ValueError(
                f"Invalid value for argument output_mode. Expected one of {OUTPUT_MODES}. "
                f"Received: output_mode={output_mode}"
            )
        if invert and output_mode != "int":
            raise ValueError(
                "`output_mode` must be `'int'` when `invert` is true. "
                f"Received: output_mode={output_mode}"
            )
        if sparse:
            raise NotImplementedError(f"{type(self).__name__} '{self.name}': sparse outputs")
        if mask_token is not None and output_mode != "int":
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': a mask token with output_mode "
                f"{output_mode!r} is not supported yet"
            )
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(
                "`idf_weights` should only be set if `output_mode` is `'tf_idf'`. "
                f"Received: idf_weights={idf_weights} and output_mode={output_mode}"
            )
        self.max_tokens, self.num_oov_indices = max_tokens, int(num_oov_indices)
        self.mask_token, self.oov_token = mask_token, oov_token
        self.invert, self.output_mode = invert, output_mode
        self.pad_to_max_tokens = pad_to_max_tokens
        self._tokens: list = []
        self._idf: np.ndarray | None = None
        self._has_input_vocabulary = vocabulary is not None
        self._vocabulary_in_config = vocabulary is not None  # (Keras's input_vocabulary)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    # --- the vocabulary ---------------------------------------------------------------

    def _oov_start(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start(self) -> int:
        return self._oov_start() + self.num_oov_indices

    def vocabulary_size(self) -> int:
        return self._token_start() + len(self._tokens)

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        specials = [self.mask_token] * self._oov_start() + [self.oov_token] * self.num_oov_indices
        vocab = specials + list(self._tokens)
        return vocab if include_special_tokens else vocab[self._token_start() :]

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        if self.output_mode == "tf_idf" and idf_weights is None:
            raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        if isinstance(vocabulary, str):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        tokens = [self._token(t) for t in np.asarray(vocabulary, dtype=object).ravel()]
        if not tokens:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocabulary}")
        specials = [self.mask_token] * self._oov_start() + [self.oov_token] * self.num_oov_indices
        if tokens[: len(specials)] == specials:
            tokens = tokens[len(specials) :]
        repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
        if repeated:
            raise ValueError(
                "The passed vocabulary has at least one repeated term. Please uniquify your "
                f"dataset. The repeated terms are: {sorted(repeated)}"
            )
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(
                f"Found reserved mask token at unexpected location in `vocabulary`. "
                f"Note that passed `vocabulary` does not need to include the OOV and mask "
                f"tokens. Either remove all mask and OOV tokens, or include them only at "
                f"the start of the vocabulary in precisely this order: {specials}. "
                f"Received: mask_token={self.mask_token} at vocabulary index "
                f"{tokens.index(self.mask_token)}"
            )
        if self.oov_token in tokens and self.num_oov_indices:
            raise ValueError(
                "Found reserved OOV token at unexpected location in `vocabulary`. Note that "
                "passed `vocabulary` does not need to include the OOV and mask tokens. Either "
                "remove all mask and OOV tokens, or include them only at the start of the "
                f"vocabulary in precisely this order: {specials}."
            )
        if self.max_tokens is not None and len(tokens) + self._token_start() > self.max_tokens:
            raise ValueError(
                "Attempted to set a vocabulary larger than the maximum vocab size. Received "
                f"vocabulary size is {len(tokens) + self._token_start()}; "
                f"`max_tokens` is {self.max_tokens}."
            )
        self._tokens = tokens
        if self.output_mode == "tf_idf":
            weights = np.asarray(idf_weights, np.float32).ravel()
            if len(weights) == len(tokens):  # Keras pads the special tokens with the mean
                weights = np.concatenate([np.full(self._token_start(), weights.mean()), weights])
            self._idf = weights.astype(np.float32)
        self._has_input_vocabulary = True

    def adapt(self, data: Any, steps: int | None = None, batch_size: int | None = None) -> None:
        """Learn the vocabulary from ``data``: tokens by count, ties by token, both
        descending, as many as ``max_tokens`` leaves room for."""
        if self._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt layer '{self.name}' after setting a static vocabulary via "
                "`vocabulary` argument or `set_vocabulary()` method."
            )
        batches = adapt_batches(data)
        if steps is not None:
            batches = (b for i, b in zip(range(steps), batches))
        self._adapt_rows(row for batch in batches for row in self._token_rows(batch))

    def _adapt_rows(self, rows: Iterable[list]) -> None:
        counts: collections.Counter = collections.Counter()
        documents: collections.Counter = collections.Counter()
        n = 0
        for row in rows:
            counts.update(row)
            documents.update(set(row))
            n += 1
        for special in (self.mask_token, self.oov_token):
            counts.pop(special, None)
        tokens = sorted(counts, key=lambda t: (counts[t], _sort_key(t)), reverse=True)
        if self.max_tokens:
            tokens = tokens[: self.max_tokens - self._token_start()]
        self._tokens = tokens
        if self.output_mode == "tf_idf":
            docs = np.array([documents[t] for t in tokens], np.float64)
            idf = np.log(1 + n / (1 + docs)).astype(np.float32)
            mean = np.float32(idf.mean()) if len(idf) else np.float32(0)
            self._idf = np.concatenate([np.full(self._token_start(), mean, np.float32), idf])

    def _token_rows(self, batch: Any) -> Iterable[list]:
        array = np.asarray(batch, dtype=object)
        array = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(len(array), -1)
        return ([self._token(t) for t in row] for row in array)

    def _token(self, t: Any) -> Any:
        raise NotImplementedError

    # --- lookups -------------------------------------------------------------------------

    def _depth(self) -> int:
        if self.pad_to_max_tokens:
            return self.max_tokens
        if not self._tokens and self._frozen_vocab_size is not None:
            return self._frozen_vocab_size  # (a file's layer, before its asset is read)
        return self.vocabulary_size()

    def host_call(self, data: Any) -> np.ndarray:
        array = np.asarray(data, dtype=object)
        if self.invert:
            return self._tokens_of(array)
        ids = self._ids_of(array)
        if self.output_mode == "int":
            return ids
        return encode(ids, self.output_mode, self._depth(), self._idf)

    def _ids_of(self, array: np.ndarray) -> np.ndarray:
        index = {t: i for i, t in enumerate(self._tokens, self._token_start())}
        flat = [self._token(t) for t in array.ravel()]
        ids = np.array([index.get(t, -1) for t in flat], np.int64).reshape(array.shape)
        missing = ids == -1
        if self.mask_token is not None:
            masked = np.array([t == self.mask_token for t in flat], bool).reshape(array.shape)
            ids[masked] = 0
            missing &= ~masked
        if missing.any():
            ids[missing] = self._oov_ids(array[missing])
        return ids

    def _oov_ids(self, tokens: np.ndarray) -> np.ndarray:
        if self.num_oov_indices == 0:
            raise ValueError(
                "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV "
                f"values {list(tokens.ravel()[:10])}, consider setting `num_oov_indices=1`."
            )
        return self._oov_start() + self._oov_bucket(tokens)

    def _oov_bucket(self, tokens: np.ndarray) -> np.ndarray:
        if self.num_oov_indices == 1:
            return np.zeros(tokens.shape, np.int64)
        raise NotImplementedError(
            f"{type(self).__name__} '{self.name}': num_oov_indices > 1 hashes strings with "
            "TensorFlow's farmhash, which kcompile does not have"
        )

    def _tokens_of(self, ids: np.ndarray) -> np.ndarray:
        vocab = self.get_vocabulary()
        flat = [vocab[int(i)] if 0 <= int(i) < len(vocab) else self.oov_token for i in ids.ravel()]
        if self.mask_token is not None:
            flat = [self.mask_token if int(i) == 0 else t for i, t in zip(ids.ravel(), flat)]
        return np.array(flat, dtype=self._token_dtype()).reshape(ids.shape)

    def _token_dtype(self) -> Any:
        return object

    def output_spec(self, shape: tuple) -> tuple[tuple, str]:
        if self.output_mode == "int":
            return shape, "int32"
        depth = self._depth()
        if self.output_mode == "one_hot":
            base = shape[:-1] if len(shape) > 1 and shape[-1] == 1 else shape
            return (*base, depth), "float32"
        return (shape[0], depth), "float32"

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_tokens": self.max_tokens,
            "num_oov_indices": self.num_oov_indices,
            "mask_token": self.mask_token,
            "oov_token": self.oov_token,
            "invert": self.invert,
            "output_mode": self.output_mode,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "vocabulary": self.get_vocabulary(include_special_tokens=False) or None,
        }

    # --- Keras's .keras files -------------------------------------------------------------

    def keras_config(self) -> dict[str, Any]:
        """The config Keras writes in a ``.keras`` file: an adapted vocabulary left to the
        file's assets, its size said."""
        config = {
            **self.get_config(),
            "sparse": False,
            "idf_weights": None,
            "vocabulary_size": self.vocabulary_size(),
            "oov_method": self.oov_method,
            "salt": self.salt,
        }
        if not self._vocabulary_in_config:
            config["vocabulary"] = None
        elif self.output_mode == "tf_idf":
            config["idf_weights"] = self._idf[self._token_start() :].tolist()
        return config

    def save_assets(self, dir_path: str) -> None:
        """Keras's: the vocabulary, unless the constructor was given it (the config holds
        that one), to ``dir_path/vocabulary.txt``."""
        if self._vocabulary_in_config:
            return
        if self.output_mode == "tf_idf":
            # Keras writes the IDF weights as the layer's variable "idf_weights".
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': an adapted tf_idf lookup's IDF "
                "weights are not written to .keras files yet"
            )
        with open(os.path.join(dir_path, "vocabulary.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(str(t) for t in self.get_vocabulary()))

    def load_assets(self, dir_path: str) -> None:
        """Keras's: the vocabulary of ``dir_path/vocabulary.txt`` (a missing file raises
        FileNotFoundError naming it), checked against the config's size."""
        if self._vocabulary_in_config:
            return
        with open(os.path.join(dir_path, "vocabulary.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        frozen = self._frozen_vocab_size
        self.set_vocabulary(lines)
        if frozen is not None and self.vocabulary_size() != frozen:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the vocabulary file holds "
                f"{self.vocabulary_size()} tokens with the special ones; the config says "
                f"vocabulary_size={frozen}"
            )


def _oov_hashing(oov_method: str, salt: Any, num_oov_indices: int, layer: Any) -> tuple:
    """Keras's ``oov_method`` and ``salt`` checked; kcompile hashes several OOV indices by
    floormod alone (with one, or none, the method is never used)."""
    if oov_method not in ("floormod", "farmhash"):
        raise ValueError(
            "Invalid value for argument oov_method. Expected one of ('floormod', "
            f"'farmhash'). Received: oov_method={oov_method}"
        )
    if salt is not None:
        if oov_method != "farmhash":
            raise ValueError(
                "`salt` can only be used when `oov_method='farmhash'`. "
                f"Received: oov_method={oov_method}"
            )
        if isinstance(salt, tuple | list) and len(salt) == 2:
            salt = list(salt)
        elif isinstance(salt, int):
            salt = [salt, salt]
        else:
            raise ValueError(
                "The `salt` argument for `IndexLookup` can only be a tuple of size 2 "
                f"integers, or a single integer. Received: salt={salt}."
            )
    if oov_method == "farmhash" and num_oov_indices > 1:
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': oov_method='farmhash' with "
            f"num_oov_indices={num_oov_indices}; kcompile hashes OOV values by floormod"
        )
    return oov_method, salt


def _sort_key(token: Any) -> Any:
    return token.encode("utf-8") if isinstance(token, str) else token


def encode(ids: np.ndarray, mode: str, depth: int, idf: np.ndarray | None) -> np.ndarray:
    """Keras's ``encode_categorical_inputs`` of token ids (float32; rank 0 and 1 inputs
    give one vector, rank 2 inputs one per row)."""
    if ids.ndim == 0:
        ids = ids.reshape(1)
    if ids.ndim > 2:
        raise ValueError(f"inputs of rank {ids.ndim} cannot be encoded; expected rank <= 2")
    if np.any(ids >= depth) or np.any(ids < 0):
        raise ValueError(f"token ids must be in [0, {depth}), got {ids.min()}..{ids.max()}")
    one_hot = np.eye(depth, dtype=np.float32)[ids]
    if mode == "one_hot":
        return one_hot[..., 0, :] if ids.ndim > 1 and ids.shape[-1] == 1 else one_hot
    counts = one_hot.sum(axis=-2)
    if mode == "multi_hot":
        return (counts > 0).astype(np.float32)
    if mode == "count":
        return counts
    return counts * idf[:depth] if idf is not None else counts
