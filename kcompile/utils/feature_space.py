"""Keras's ``keras.utils.FeatureSpace`` (``keras/src/layers/preprocessing/feature_space.py``):
one object that indexes, normalizes, hashes, crosses and encodes the columns of a table
with Keras's preprocessing layers, into one vector per row (``"concat"``) or a dict.

kcompile has no tf.data. ``adapt`` takes a dict of arrays or lists (adapted in batches of
32, as Keras's ``Dataset.from_tensor_slices(dict).batch(32)``) or a dataset kcompile
offers: a ``keras.utils.PyDataset`` (the datasets of kcompile's ``*_dataset_from_*``
utilities among them) or a generator, yielding dicts of feature batches or single rows.
Called on a dict of arrays, the space runs each layer on the data (the lookups and hashes
on the host, the others eagerly) and returns numpy arrays, so ``dataset.map(feature_space)``
works on kcompile's Dataset.

In a model (``get_inputs`` and ``get_encoded_features``), each feature's Input feeds its
preprocessor: lookups and hashes run on the host before the compiled step (kcompile's host
stage); Normalization, Rescaling, Discretization, the one-hot encodings, the crosses
(``feature_space_layers.CrossLookup``) and the concatenation are compiled.

``save`` writes Keras's ``.keras`` file and ``load_feature_space`` reads one that Keras or
kcompile wrote (``feature_space_saving``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from kcompile import layers
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.session import unique_name
from kcompile.layers.layer import Layer
from kcompile.saving.saving_lib import register_feature_space
from kcompile.trainers.batches import PyDataset
from kcompile.utils.dataset_utils import Dataset
from kcompile.utils.feature_space_layers import CrossLookup, TFDConcat, TFDIdentity
from kcompile.utils.feature_space_saving import (
    MODULE,
    has_input_vocabulary,
    keras_entry,
    load_feature_space,
    preprocessor_entry,
    preprocessor_from_entry,
    save_feature_space,
    saved_layers,
)

__all__ = ["Cross", "Feature", "FeatureSpace", "load_feature_space"]

_ADAPT_BATCH = 32  # Keras batches a dict (or unbatched rows) by 32 to adapt


class Cross:
    """A feature cross: the named features' codes hashed into ``crossing_dim`` bins."""

    def __init__(self, feature_names: Any, crossing_dim: int, output_mode: str = "one_hot"):
        if output_mode not in {"int", "one_hot"}:
            raise ValueError(
                "Invalid value for argument `output_mode`. Expected one of {'int', 'one_hot'}. "
                f"Received: output_mode={output_mode}"
            )
        self.feature_names = tuple(feature_names)
        self.crossing_dim = crossing_dim
        self.output_mode = output_mode

    @property
    def name(self) -> str:
        return "_X_".join(self.feature_names)

    def get_config(self) -> dict[str, Any]:
        return {
            "feature_names": self.feature_names,
            "crossing_dim": self.crossing_dim,
            "output_mode": self.output_mode,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Cross:
        return cls(**config)


class Feature:
    """A feature: its Input's dtype, its preprocessing layer, how its output is encoded."""

    def __init__(self, dtype: str, preprocessor: Any, output_mode: str):
        if output_mode not in {"int", "one_hot", "float"}:
            raise ValueError(
                "Invalid value for argument `output_mode`. Expected one of "
                f"{{'int', 'one_hot', 'float'}}. Received: output_mode={output_mode}"
            )
        self.dtype = dtype
        if isinstance(preprocessor, dict):
            preprocessor = preprocessor_from_entry(preprocessor)
        self.preprocessor = preprocessor
        self.output_mode = output_mode

    def get_config(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "preprocessor": preprocessor_entry(self.preprocessor),
            "output_mode": self.output_mode,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Feature:
        return cls(**config)


def _one_hot_size(name: str, preprocessor: Any) -> int | None:
    """Keras's dimension of a one-hot encoded feature (None: Keras leaves it unencoded)."""
    if isinstance(preprocessor, layers.IntegerLookup | layers.StringLookup):
        return preprocessor.vocabulary_size()
    if isinstance(preprocessor, layers.CategoryEncoding):
        return preprocessor.num_tokens
    if isinstance(preprocessor, layers.Discretization):
        return preprocessor.num_bins
    if isinstance(preprocessor, layers.HashedCrossing | layers.Hashing):
        return preprocessor.num_bins
    raise ValueError(
        f"Feature '{name}' has `output_mode='one_hot'`. However it isn't a standard feature "
        "and the dimensionality of its output space is not known, thus it cannot be one-hot "
        "encoded. Try using `output_mode='int'`."
    )


class FeatureSpace(Layer):
    """One-stop utility for preprocessing and encoding structured data (Keras's).

    ``features`` maps each feature's name to its type: a name (``"float"``,
    ``"float_rescaled"``, ``"float_normalized"``, ``"float_discretized"``,
    ``"integer_categorical"``, ``"string_categorical"``, ``"integer_hashed"``,
    ``"string_hashed"``) or a ``FeatureSpace.<type>(...)`` with its own settings;
    ``crosses`` lists features to cross (tuples of names, or ``FeatureSpace.cross``);
    ``output_mode`` is ``"concat"`` (one vector per row) or ``"dict"``.
    """

    @classmethod
    def cross(cls, feature_names: Any, crossing_dim: int, output_mode: str = "one_hot"):
        return Cross(feature_names, crossing_dim, output_mode=output_mode)

    @classmethod
    def feature(cls, dtype: str, preprocessor: Any, output_mode: str) -> Feature:
        return Feature(dtype, preprocessor, output_mode)

    @classmethod
    def float(cls, name: str | None = None) -> Feature:
        name = name or unique_name("float")
        preprocessor = TFDIdentity(dtype="float32", name=f"{name}_preprocessor")
        return Feature(dtype="float32", preprocessor=preprocessor, output_mode="float")

    @classmethod
    def float_rescaled(cls, scale=1.0, offset=0.0, name: str | None = None) -> Feature:
        name = name or unique_name("float_rescaled")
        preprocessor = layers.Rescaling(scale=scale, offset=offset, name=f"{name}_preprocessor")
        return Feature(dtype="float32", preprocessor=preprocessor, output_mode="float")

    @classmethod
    def float_normalized(cls, name: str | None = None) -> Feature:
        name = name or unique_name("float_normalized")
        preprocessor = layers.Normalization(axis=-1, name=f"{name}_preprocessor")
        return Feature(dtype="float32", preprocessor=preprocessor, output_mode="float")

    @classmethod
    def float_discretized(
        cls, num_bins, bin_boundaries=None, output_mode: str = "one_hot", name=None
    ) -> Feature:
        name = name or unique_name("float_discretized")
        preprocessor = layers.Discretization(
            num_bins=num_bins, bin_boundaries=bin_boundaries, name=f"{name}_preprocessor"
        )
        return Feature(dtype="float32", preprocessor=preprocessor, output_mode=output_mode)

    @classmethod
    def integer_categorical(
        cls, max_tokens=None, num_oov_indices=1, output_mode: str = "one_hot", name=None
    ) -> Feature:
        name = name or unique_name("integer_categorical")
        preprocessor = layers.IntegerLookup(
            name=f"{name}_preprocessor", max_tokens=max_tokens, num_oov_indices=num_oov_indices
        )
        return Feature(dtype="int32", preprocessor=preprocessor, output_mode=output_mode)

    @classmethod
    def string_categorical(
        cls, max_tokens=None, num_oov_indices=1, output_mode: str = "one_hot", name=None
    ) -> Feature:
        name = name or unique_name("string_categorical")
        preprocessor = layers.StringLookup(
            name=f"{name}_preprocessor", max_tokens=max_tokens, num_oov_indices=num_oov_indices
        )
        return Feature(dtype="string", preprocessor=preprocessor, output_mode=output_mode)

    @classmethod
    def string_hashed(cls, num_bins, output_mode: str = "one_hot", name=None) -> Feature:
        name = name or unique_name("string_hashed")
        preprocessor = layers.Hashing(name=f"{name}_preprocessor", num_bins=num_bins)
        return Feature(dtype="string", preprocessor=preprocessor, output_mode=output_mode)

    @classmethod
    def integer_hashed(cls, num_bins, output_mode: str = "one_hot", name=None) -> Feature:
        name = name or unique_name("integer_hashed")
        preprocessor = layers.Hashing(name=f"{name}_preprocessor", num_bins=num_bins)
        return Feature(dtype="int32", preprocessor=preprocessor, output_mode=output_mode)

    def __init__(
        self,
        features: dict,
        output_mode: str = "concat",
        crosses: Any = None,
        crossing_dim: int | None = 32,
        hashing_dim: int = 32,
        num_discretization_bins: int = 32,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not features:
            raise ValueError("The `features` argument cannot be None or empty.")
        self.crossing_dim = crossing_dim
        self.hashing_dim = hashing_dim
        self.num_discretization_bins = num_discretization_bins
        self.features = {
            name: self._standardize_feature(name, value) for name, value in features.items()
        }
        self.crosses = [self._standardize_cross(c, set(features)) for c in crosses or []]
        self.crosses_by_name = {cross.name: cross for cross in self.crosses}
        if output_mode not in {"dict", "concat"}:
            raise ValueError(
                "Invalid value for argument `output_mode`. Expected one of {'dict', 'concat'}. "
                f"Received: output_mode={output_mode}"
            )
        self.output_mode = output_mode
        self.inputs = {
            name: layers.Input(shape=(1,), dtype=value.dtype, name=name)
            for name, value in self.features.items()
        }
        self.preprocessors = {name: value.preprocessor for name, value in self.features.items()}
        self.encoded_features = None
        self.crossers = {
            cross.name: layers.HashedCrossing(cross.crossing_dim, name=cross.name)
            for cross in self.crosses
        }
        self.one_hot_encoders: dict[str, Any] = {}
        self._is_adapted = False
        self.concat = None
        self._preprocessed_features_names: list[str] | None = None
        self._crossed_features_names: list[str] | None = None
        self._sublayers_built = False

    def _standardize_feature(self, name: str, feature: Any) -> Feature:
        if isinstance(feature, Feature):
            return feature
        if isinstance(feature, dict):
            return _saveable_from_entry(feature, Feature)
        makers = {
            "float": lambda: self.float(name=name),
            "float_normalized": lambda: self.float_normalized(name=name),
            "float_rescaled": lambda: self.float_rescaled(name=name),
            "float_discretized": lambda: self.float_discretized(
                name=name, num_bins=self.num_discretization_bins
            ),
            "integer_categorical": lambda: self.integer_categorical(name=name),
            "string_categorical": lambda: self.string_categorical(name=name),
            "integer_hashed": lambda: self.integer_hashed(self.hashing_dim, name=name),
            "string_hashed": lambda: self.string_hashed(self.hashing_dim, name=name),
        }
        if not isinstance(feature, str) or feature not in makers:
            raise ValueError(f"Invalid feature type: {feature}")
        return makers[feature]()

    def _standardize_cross(self, cross: Any, names: set) -> Cross:
        if isinstance(cross, dict):
            cross = _saveable_from_entry(cross, Cross)
        if isinstance(cross, Cross):
            return cross
        if not self.crossing_dim:
            raise ValueError(
                "When specifying `crosses`, the argument `crossing_dim` (dimensionality of "
                "the crossing space) should be specified as well."
            )
        if any(key not in names for key in cross):
            raise ValueError(
                "All features referenced in the `crosses` argument should be present in the "
                f"`features` dict. Received unknown features: {cross}"
            )
        return Cross(cross, crossing_dim=self.crossing_dim)

    # --- adapt ---------------------------------------------------------------------------

    def _list_adaptable_preprocessors(self) -> list[str]:
        names = []
        for name in self.features:
            preprocessor = self.preprocessors[name]
            # A Normalization given its mean, a TextVectorization its vocabulary: not adapted.
            given = (
                preprocessor.input_mean is not None
                if isinstance(preprocessor, layers.Normalization)
                else has_input_vocabulary(preprocessor)
                if isinstance(preprocessor, layers.TextVectorization)
                else False
            )
            if not given and hasattr(preprocessor, "adapt"):
                names.append(name)
        return names

    def adapt(self, dataset: Any) -> None:
        """Adapt each feature's preprocessor (vocabularies, mean and variance, bins) to
        ``dataset``: a dict of arrays or lists, a PyDataset or a generator of dicts."""
        batches = _adapt_batches(dataset)
        for name in self._list_adaptable_preprocessors():
            columns = [_as_column(_column(batch, name)) for batch in batches]
            self.preprocessors[name].adapt(Dataset(len(columns), columns.__getitem__))
        self._is_adapted = True
        self.get_encoded_features()  # finishes building, as Keras does
        self.built = True
        self._sublayers_built = True

    # --- in a model ----------------------------------------------------------------------

    def get_inputs(self) -> dict[str, KerasTensor]:
        """The raw features' Inputs (shape (1,), the feature's dtype), by name."""
        self._check_if_built()
        return self.inputs

    def get_encoded_features(self) -> Any:
        """The encoded features of ``get_inputs()``: one tensor in concat mode, a dict in
        dict mode."""
        self._check_if_adapted()
        if self.encoded_features is None:
            preprocessed = {name: self.preprocessors[name](x) for name, x in self.inputs.items()}
            crossed = self._cross_symbolic(preprocessed)
            self.encoded_features = self._build_merge(preprocessed, crossed)
        return self.encoded_features

    def _cross_symbolic(self, preprocessed: dict) -> dict:
        out = {}
        for cross in self.crosses:
            inputs = [preprocessed[name] for name in cross.feature_names]
            crosser = self.crossers[cross.name]
            crosser.compute_output_shape([t.shape for t in inputs])  # Keras's check: 2 inputs
            lookup = CrossLookup(
                crosser,
                [self.preprocessors[name] for name in cross.feature_names],
                cross.feature_names,
                name=f"{cross.name}_lookup",
            )
            out[cross.name] = lookup(inputs)
        return out

    def _ordered(self, preprocessed: dict, crossed: dict) -> list[tuple[str, Any]]:
        """Keras's order of the outputs: the features by name, then the crosses by name."""
        if not self._preprocessed_features_names:
            self._preprocessed_features_names = sorted(preprocessed)
            self._crossed_features_names = sorted(crossed)
        return [(n, preprocessed[n]) for n in self._preprocessed_features_names] + [
            (n, crossed[n]) for n in self._crossed_features_names
        ]

    def _build_merge(self, preprocessed: dict, crossed: dict) -> Any:
        """The encoders and the concatenation, made on the symbolic features (Keras's
        first ``_merge_features``), with its checks of each feature's dtype."""
        outputs = {}
        for name, feature in self._ordered(preprocessed, crossed):
            spec = self.features[name] if name in self.features else self.crosses_by_name[name]
            if spec.output_mode == "one_hot":
                preprocessor = (
                    self.preprocessors[name] if name in self.preprocessors else self.crossers[name]
                )
                if not feature.dtype.startswith("int"):
                    raise ValueError(
                        f"Feature '{name}' has `output_mode='one_hot'`. Thus its preprocessor "
                        f"should return an integer dtype. Instead it returns a {feature.dtype} "
                        "dtype."
                    )
                size = _one_hot_size(name, preprocessor)
                if size is not None:
                    encoder = layers.CategoryEncoding(num_tokens=size, output_mode="multi_hot")
                    self.one_hot_encoders[name] = encoder
                    feature = encoder(feature)
            if self.output_mode == "concat" and (
                feature.dtype.startswith("int") or feature.dtype == "string"
            ):
                raise ValueError(
                    f"Cannot concatenate features because feature '{name}' has not been "
                    f"encoded (it has dtype {feature.dtype}). Consider using "
                    "`output_mode='dict'`."
                )
            outputs[name] = feature
        if self.output_mode == "dict":
            return outputs
        self.concat = TFDConcat(axis=-1)
        return self.concat(list(outputs.values()))

    def _check_if_adapted(self) -> None:
        if not self._is_adapted:
            if self._list_adaptable_preprocessors():
                raise ValueError(
                    "You need to call `.adapt(dataset)` on the FeatureSpace before you can "
                    "start using it."
                )
            self._is_adapted = True

    def _check_if_built(self) -> None:
        if not self._sublayers_built:
            self._check_if_adapted()
            self.get_encoded_features()
            self._sublayers_built = True

    # --- on data -------------------------------------------------------------------------

    def __call__(self, data: Any) -> Any:
        """The encoded features of ``data``, a dict of arrays (a batch of rows, or one row
        of scalars, which gives one vector), as numpy arrays."""
        self._check_if_built()
        if not isinstance(data, dict):
            raise ValueError(
                "A FeatureSpace can only be called with a dict. "
                f"Received: data={data} (of type {type(data)}"
            )
        if any(isinstance(x, KerasTensor) for x in data.values()):
            raise TypeError(
                "A FeatureSpace is called on data; in a model, use its get_inputs() and "
                "get_encoded_features()"
            )
        _check_columns(data, self.features)
        arrays = {name: self._as_input(name, x) for name, x in data.items()}
        one_row = any(x.ndim == 0 for x in arrays.values())
        arrays = {name: _as_column(x) for name, x in arrays.items()}
        preprocessed = {name: self.preprocessors[name](x) for name, x in arrays.items()}
        crossed = {
            cross.name: self.crossers[cross.name](
                [preprocessed[name] for name in cross.feature_names]
            )
            for cross in self.crosses
        }
        merged = {}
        for name, feature in self._ordered(preprocessed, crossed):
            encoder = self.one_hot_encoders.get(name)
            merged[name] = _output_array(encoder(feature) if encoder else feature)
        if self.output_mode == "concat":
            out = self.concat(list(merged.values()))
            if one_row and out.shape[0] != 1:
                raise ValueError(
                    f"Expected rebatched data to have batch size 1. Received: shape={out.shape}"
                )
            return out[0] if one_row else out
        if one_row:
            return {k: v[0] if v.ndim == 2 and v.shape[0] == 1 else v for k, v in merged.items()}
        return merged

    def _as_input(self, name: str, x: Any) -> np.ndarray:
        """A column as an array; a float feature's values as float32 (its Input's dtype)."""
        array = np.asarray(x)
        if self.features[name].dtype == "float32" and array.dtype.kind in "biuf":
            return array.astype(np.float32)
        return array

    # --- configs and files ---------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {
            "features": {name: _entry(f) for name, f in self.features.items()},
            "output_mode": self.output_mode,
            "crosses": [_entry(cross) for cross in self.crosses],
            "crossing_dim": self.crossing_dim,
            "hashing_dim": self.hashing_dim,
            "num_discretization_bins": self.num_discretization_bins,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FeatureSpace:
        return cls(**config)

    def get_build_config(self) -> dict[str, Any]:
        return {
            name: feature.preprocessor.get_build_config() or {}
            for name, feature in self.features.items()
        }

    def build_from_config(self, config: dict[str, Any]) -> None:
        for name in config:
            preprocessor = self.features[name].preprocessor
            if not preprocessor.built:
                preprocessor.build_from_config(config[name])
        self._is_adapted = True

    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Save the FeatureSpace to a ``.keras`` file, as Keras writes it;
        ``load_feature_space`` (and Keras's ``load_model``) reads it back."""
        save_feature_space(self, filepath, overwrite=overwrite)

    def save_own_variables(self, store: Any) -> None:
        return

    def load_own_variables(self, store: Any) -> None:
        return


# --- the data ----------------------------------------------------------------------------


def _check_columns(data: dict, features: dict) -> None:
    """Keras's KeyError for a column that is not a feature, or a feature with no column."""
    unknown = [k for k in data if k not in features]
    missing = [k for k in features if k not in data]
    if unknown:
        raise KeyError(
            f"the data's column '{unknown[0]}' is not a feature of the FeatureSpace; its "
            f"features are {list(features)}"
        )
    if missing:
        raise KeyError(
            f"the data has no column for feature '{missing[0]}'; the FeatureSpace's features "
            f"are {list(features)}, the data's columns {list(data)}"
        )


def _as_column(x: Any) -> np.ndarray:
    """Keras's rows: a scalar as one row of one value, a vector as a column."""
    array = np.asarray(x)
    if array.ndim == 0:
        return array.reshape(1, 1)
    return array[:, None] if array.ndim == 1 else array


def _output_array(x: Any) -> np.ndarray:
    """A feature as Keras's JAX backend returns it: float32, or int32 codes."""
    array = np.asarray(x)
    if array.dtype.kind in "iub":
        return array.astype(np.int32)
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _column(batch: Any, name: str) -> Any:
    if not isinstance(batch, dict):
        raise ValueError(
            "`adapt()` takes a dataset of dicts of feature values, without labels (map a "
            f"labeled one with `lambda x, y: x` first). Received an item of type {type(batch)}"
        )
    if name not in batch:
        raise KeyError(f"adapt: the data has no column '{name}'; it has {list(batch)}")
    return batch[name]


def _adapt_batches(dataset: Any) -> list:
    """The batches ``adapt`` reads: a dict in batches of 32 rows, a dataset's items as they
    are (single rows stacked by 32), each read once."""
    if isinstance(dataset, dict):
        columns = {k: np.asarray(v) for k, v in dataset.items()}
        lengths = {k: len(v) if v.ndim else 1 for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"adapt: the columns have different lengths: {lengths}")
        rows = next(iter(lengths.values()), 0)
        columns = {k: v.reshape(1) if v.ndim == 0 else v for k, v in columns.items()}
        return [
            {k: v[i : i + _ADAPT_BATCH] for k, v in columns.items()}
            for i in range(0, rows, _ADAPT_BATCH)
        ]
    if isinstance(dataset, PyDataset):
        items = [dataset[i] for i in range(len(dataset))]
    elif isinstance(dataset, Iterator):
        items = list(dataset)
    else:
        raise ValueError(
            "`adapt()` can only be called on a dataset (a keras.utils.PyDataset, such as "
            "kcompile's datasets, or a generator) or a dict of arrays/lists. "
            f"Received instead: {dataset} (of type {type(dataset)})"
        )
    if items and isinstance(items[0], dict) and all(np.ndim(v) == 0 for v in items[0].values()):
        return [  # single rows, batched as Keras batches them
            {k: np.stack([np.asarray(r[k]) for r in items[i : i + _ADAPT_BATCH]]) for k in items[0]}
            for i in range(0, len(items), _ADAPT_BATCH)
        ]
    return items


# --- Keras's configs ---------------------------------------------------------------------


def _entry(obj: Feature | Cross) -> dict:
    """A Feature or Cross as Keras serializes it."""
    name = type(obj).__name__
    return keras_entry(MODULE, name, obj.get_config(), name)


def _saveable_from_entry(entry: dict, cls: type) -> Any:
    if entry.get("class_name") != cls.__name__:
        raise ValueError(
            f"expected a serialized {cls.__name__} (class_name {cls.__name__!r}), got "
            f"class_name {entry.get('class_name')!r}"
        )
    return cls.from_config(dict(entry["config"]))


register_feature_space(FeatureSpace, saved_layers)
