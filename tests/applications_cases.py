"""What ``tests/test_applications.py`` builds, and the deterministic weights and inputs it
feeds, shared with ``tests/fixture_scripts/make_applications_fixtures.py``, which runs the
same cases on Keras 3 itself and writes ``keras_fixtures/applications.json.gz`` and
``applications.npz``.

Weights come from a formula of the layer's name, the weight's place in it and its shape
(no file of a few megabytes per model): both sides write them into a Keras 2 HDF5 file
(``write_legacy_h5``) and load it through their own loaders, Keras's
``model.load_weights`` there and ``weights=<path>`` here.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

# Every architecture as its constructor builds it by default (ImageNet's 1,000 classes).
ARCHITECTURES = [
    "ConvNeXtTiny",
    "ConvNeXtSmall",
    "ConvNeXtBase",
    "ConvNeXtLarge",
    "ConvNeXtXLarge",
    "DenseNet121",
    "DenseNet169",
    "DenseNet201",
    "EfficientNetB0",
    "EfficientNetB1",
    "EfficientNetB2",
    "EfficientNetB3",
    "EfficientNetB4",
    "EfficientNetB5",
    "EfficientNetB6",
    "EfficientNetB7",
    "EfficientNetV2B0",
    "EfficientNetV2B1",
    "EfficientNetV2B2",
    "EfficientNetV2B3",
    "EfficientNetV2S",
    "EfficientNetV2M",
    "EfficientNetV2L",
    "InceptionResNetV2",
    "InceptionV3",
    "MobileNet",
    "MobileNetV2",
    "MobileNetV3Small",
    "MobileNetV3Large",
    "NASNetMobile",
    "NASNetLarge",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "ResNet50V2",
    "ResNet101V2",
    "ResNet152V2",
    "VGG16",
    "VGG19",
    "Xception",
]

# case name -> (architecture, keyword arguments): every architecture by default, then the
# other paths of the constructors (no top, pooling, small inputs, each family's own).
BUILDS: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: (name, {"weights": None}) for name in ARCHITECTURES},
    "ResNet50_notop_avg": (
        "ResNet50",
        {"weights": None, "include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"},
    ),
    "ResNet101V2_notop_max": (
        "ResNet101V2",
        {"weights": None, "include_top": False, "input_shape": (64, 48, 3), "pooling": "max"},
    ),
    "VGG16_notop_max": (
        "VGG16",
        {"weights": None, "include_top": False, "input_shape": (32, 32, 3), "pooling": "max"},
    ),
    "VGG19_top_small": (
        "VGG19",
        {"weights": None, "input_shape": (64, 64, 3), "classes": 7, "name": "vgg"},
    ),
    "MobileNet_alpha": (
        "MobileNet",
        {
            "weights": None,
            "alpha": 0.25,
            "depth_multiplier": 2,
            "dropout": 0.2,
            "input_shape": (128, 128, 3),
            "classes": 10,
            "classifier_activation": None,
        },
    ),
    "MobileNetV2_alpha": (
        "MobileNetV2",
        {
            "weights": None,
            "alpha": 0.35,
            "include_top": False,
            "input_shape": (32, 32, 3),
            "pooling": "avg",
        },
    ),
    "MobileNetV3Small_min": (
        "MobileNetV3Small",
        {
            "weights": None,
            "minimalistic": True,
            "alpha": 0.75,
            "input_shape": (32, 32, 3),
            "classes": 10,
            "include_preprocessing": False,
        },
    ),
    "MobileNetV3Large_notop": (
        "MobileNetV3Large",
        {"weights": None, "include_top": False, "input_shape": (64, 64, 3), "pooling": "max"},
    ),
    "EfficientNetB0_notop": (
        "EfficientNetB0",
        {"weights": None, "include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"},
    ),
    "EfficientNetV2B0_notop": (
        "EfficientNetV2B0",
        {
            "weights": None,
            "include_top": False,
            "input_shape": (32, 32, 3),
            "include_preprocessing": False,
        },
    ),
    "DenseNet121_notop": (
        "DenseNet121",
        {"weights": None, "include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"},
    ),
    "InceptionV3_notop": (
        "InceptionV3",
        {"weights": None, "include_top": False, "input_shape": (75, 75, 3)},
    ),
    "InceptionResNetV2_notop": (
        "InceptionResNetV2",
        {"weights": None, "include_top": False, "input_shape": (75, 75, 3), "pooling": "avg"},
    ),
    "Xception_notop": (
        "Xception",
        {"weights": None, "include_top": False, "input_shape": (71, 71, 3), "pooling": "avg"},
    ),
    "NASNetMobile_notop": (
        "NASNetMobile",
        {"weights": None, "include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"},
    ),
    "ConvNeXtTiny_notop": (
        "ConvNeXtTiny",
        {"weights": None, "include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"},
    ),
}

# case name -> (architecture, keyword arguments, input shape): small models whose outputs
# are compared number for number, given the same weights and inputs. Few, as compiling one
# takes 30 s or more on 2 cores; the builds above check every architecture's structure.
PARITY: dict[str, tuple[str, dict[str, Any], tuple[int, ...]]] = {
    "MobileNetV3Small": (
        "MobileNetV3Small",
        {"input_shape": (32, 32, 3), "classes": 10, "classifier_activation": None},
        (2, 32, 32, 3),
    ),
    "ResNet50": (
        "ResNet50",
        {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"},
        (2, 32, 32, 3),
    ),
    "EfficientNetB0": (
        "EfficientNetB0",
        {"include_top": False, "input_shape": (32, 32, 3), "pooling": "avg"},
        (2, 32, 32, 3),
    ),
    "DenseNet121": (
        "DenseNet121",
        {"include_top": False, "input_shape": (32, 32, 3), "pooling": "max"},
        (2, 32, 32, 3),
    ),
}


# The submodules with preprocess_input, and an image batch in [0, 255] to give them.
PREPROCESS_MODULES = [
    "convnext",
    "densenet",
    "efficientnet",
    "efficientnet_v2",
    "imagenet_utils",
    "inception_resnet_v2",
    "inception_v3",
    "mobilenet",
    "mobilenet_v2",
    "mobilenet_v3",
    "nasnet",
    "resnet",
    "resnet50",
    "resnet_v2",
    "vgg16",
    "vgg19",
    "xception",
]


def image_batch(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, size=shape).astype(np.float32)


def class_index() -> dict[str, list[str]]:
    """A stand-in for ImageNet's class index (Keras downloads the real one)."""
    return {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}


def weight_value(layer: str, index: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The value of weight ``index`` of layer ``layer``: a function of the names and shape
    alone, scaled so that a deep network's activations stay of order one."""
    rng = np.random.default_rng(zlib.crc32(f"{layer}/{index}".encode()))
    u = rng.uniform(-1.0, 1.0, size=shape)
    if name in ("moving_variance", "variance"):
        value = 1.0 + 0.5 * np.abs(u)
    elif name == "count":
        value = np.zeros(shape)
    elif len(shape) <= 1:  # biases, gammas, betas, means, layer scales
        value = (1.0 if name == "gamma" else 0.0) + 0.1 * u
    else:
        fan_in = int(np.prod(shape[:-1]))
        if name == "depthwise_kernel":
            fan_in = int(np.prod(shape[:2]))
        value = u * np.sqrt(3.0 / fan_in)
    return value.astype(np.float32)


def legacy_layers(model: Any) -> list[tuple[str, list[tuple[str, tuple[int, ...]]]]]:
    """The model's layers that hold weights, in order, each with its weights as Keras 2
    files list them (trainable ones first): (weight name, shape)."""
    out = []
    for layer in model.layers:
        ws = list(layer.trainable_weights) + list(layer.non_trainable_weights)
        if ws:
            out.append((layer.name, [(w.name, tuple(int(d) for d in w.shape)) for w in ws]))
    return out


def write_legacy_h5(path: str, layers: list[tuple[str, list[tuple[str, tuple[int, ...]]]]]):
    """A Keras 2 weights file (the layout of Keras's pretrained ``.h5`` files) holding
    ``weight_value`` for each weight."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for name, weights in layers:
            g = f.create_group(name)
            keys = [f"{name}/{w}_{i}:0" for i, (w, _) in enumerate(weights)]
            g.attrs["weight_names"] = [k.encode() for k in keys]
            for i, ((w, shape), key) in enumerate(zip(weights, keys)):
                g.create_dataset(key, data=weight_value(name, i, w, shape))
