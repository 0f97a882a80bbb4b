"""``keras.applications.resnet50``: ResNet50 and its preprocessing, from ``resnet``
(Keras's module of the same name re-exports them so)."""

from kcompile.applications.resnet import ResNet50, decode_predictions, preprocess_input

__all__ = ["ResNet50", "decode_predictions", "preprocess_input"]
