"""Keras 3.15's public names that kcompile does not offer yet, each with the reason.

A program that touches one stops at that name with ``NotImplementedError`` saying what
is missing and why, instead of an ``AttributeError`` that reads like a typo. Each
namespace's module ``__getattr__`` asks ``refuse``; a name Keras does not have either
is still an ``AttributeError``.
"""

from __future__ import annotations

from typing import NoReturn

# Whole namespaces of keras that kcompile has no module for.
NAMESPACES = {
    "applications": (
        "the pretrained architectures (ResNet50, MobileNetV2, EfficientNet, ...) are not "
        "built in kcompile yet; write the model with keras.layers"
    ),
    "mixed_precision": "kcompile computes in float32; mixed precision is not supported yet",
    "dtype_policies": "kcompile computes in float32; dtype policies are not supported yet",
    "quantizers": "quantization (model.quantize, keras.quantizers) is not supported yet",
    "preprocessing": (
        "the dataset builders read folders with TensorFlow's tf.data; load the arrays "
        "with numpy and pass them to fit"
    ),
    "export": "ExportArchive writes TensorFlow SavedModels; kcompile exports with model.export",
}

_LAYER = "this layer is not implemented in kcompile yet"
_CONV3D = (
    "3-D convolutions are not supported yet: the IR's convolution primitive is 2-D and no "
    "3-D one is written (a 3-D convolution made of 2-D ones would unroll one per depth "
    "offset and output depth into the step); fold the depth into the channels and use "
    "Conv2D, or TimeDistributed(Conv2D) over the depth"
)
_CONV_LSTM = (
    "convolutional LSTMs are not supported yet: no cell with convolutions in its step is "
    "written (the recurrent layers' steps are matrix products); use "
    "TimeDistributed(Conv2D), then TimeDistributed(Flatten) and an LSTM"
)

_BACKEND_WRAPPER = "it wraps another framework's module, which kcompile cannot compile"
_FOLDER = "it reads files with TensorFlow's tf.data; load the arrays with numpy instead"
_PIL = "it converts images with PIL, which kcompile does not depend on"

NAMES: dict[str, dict[str, str]] = {
    "layers": {
        **dict.fromkeys(
            (
                "AdaptiveAveragePooling1D",
                "AdaptiveAveragePooling2D",
                "AdaptiveAveragePooling3D",
                "AdaptiveMaxPooling1D",
                "AdaptiveMaxPooling2D",
                "AdaptiveMaxPooling3D",
                "AdditiveAttention",
                "AlphaDropout",
                "AugMix",
                "CategoryEncoding",
                "ContrastLimitedAdaptiveHistogramEqualization",
                "Cropping3D",
                "CutMix",
                "DepthwiseConv1D",
                "Discretization",
                "ELU",
                "EinsumDense",
                "Equalization",
                "GroupQueryAttention",
                "HashedCrossing",
                "Hashing",
                "Identity",
                "MaxNumBoundingBoxes",
                "MelSpectrogram",
                "MixUp",
                "PReLU",
                "Pipeline",
                "RMSNormalization",
                "RandAugment",
                "RandomColorJitter",
                "RandomElasticTransform",
                "RandomErasing",
                "RandomGaussianBlur",
                "RandomHue",
                "RandomPerspective",
                "RandomPosterization",
                "RandomSaturation",
                "RandomSharpness",
                "ReversibleEmbedding",
                "STFTSpectrogram",
                "SpatialDropout3D",
                "SpectralNormalization",
                "UpSampling3D",
                "Wrapper",
                "ZeroPadding3D",
            ),
            _LAYER,
        ),
        **dict.fromkeys(
            ("Conv3D", "Convolution3D", "Conv3DTranspose", "Convolution3DTranspose"), _CONV3D
        ),
        **dict.fromkeys(("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"), _CONV_LSTM),
        "FlaxLayer": _BACKEND_WRAPPER,
        "JaxLayer": _BACKEND_WRAPPER,
        "TorchModuleWrapper": _BACKEND_WRAPPER,
        "TFSMLayer": "it loads a TensorFlow SavedModel, which kcompile cannot compile",
    },
    "callbacks": {
        "OrbaxCheckpoint": "it writes checkpoints with Orbax (JAX); use ModelCheckpoint",
        "RemoteMonitor": "it posts logs to a server over the network; use CSVLogger",
        "SwapEMAWeights": "optimizers with use_ema are not supported yet",
    },
    "utils": {
        "Config": "not implemented in kcompile yet",
        "FeatureSpace": "it builds tf.data preprocessing; not implemented in kcompile",
        "array_to_img": _PIL,
        "img_to_array": _PIL,
        "load_img": _PIL,
        "save_img": _PIL,
        "audio_dataset_from_directory": _FOLDER,
        "image_dataset_from_directory": _FOLDER,
        "text_dataset_from_directory": _FOLDER,
        "timeseries_dataset_from_array": "not implemented in kcompile yet",
    },
    "saving": {
        "KerasFileEditor": "not implemented in kcompile yet; load the model and edit it",
    },
}


def refuse(namespace: str, name: str) -> NoReturn:
    """Raise for ``keras.<namespace>.<name>``: NotImplementedError with the reason when
    Keras has the name, else AttributeError."""
    reason = NAMES.get(namespace, {}).get(name)
    if reason is None:
        raise AttributeError(f"module 'kcompile.{namespace}' has no attribute {name!r}")
    raise NotImplementedError(f"keras.{namespace}.{name} is not offered by kcompile yet: {reason}")


def refuse_namespace(name: str) -> None:
    """Raise NotImplementedError for a keras namespace kcompile has no module for."""
    if name in NAMESPACES:
        raise NotImplementedError(f"keras.{name} is not offered by kcompile: {NAMESPACES[name]}")
