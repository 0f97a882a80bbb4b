"""``keras.applications``: Keras's 40 image classification architectures, ported from
Keras 3.15.1 with the same layer names and arguments and built from kcompile's layers,
with their ``preprocess_input``/``decode_predictions`` in one submodule per family as
Keras has them. ``weights="imagenet"`` reads Keras's own weight files from Keras's cache
(``pretrained``)."""

from kcompile.applications import (
    convnext,
    densenet,
    efficientnet,
    efficientnet_v2,
    imagenet_utils,
    inception_resnet_v2,
    inception_v3,
    mobilenet,
    mobilenet_v2,
    mobilenet_v3,
    nasnet,
    resnet,
    resnet50,
    resnet_v2,
    vgg16,
    vgg19,
    xception,
)
from kcompile.applications.convnext import (
    ConvNeXtBase,
    ConvNeXtLarge,
    ConvNeXtSmall,
    ConvNeXtTiny,
    ConvNeXtXLarge,
)
from kcompile.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from kcompile.applications.efficientnet import (
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
)
from kcompile.applications.efficientnet_v2 import (
    EfficientNetV2B0,
    EfficientNetV2B1,
    EfficientNetV2B2,
    EfficientNetV2B3,
    EfficientNetV2L,
    EfficientNetV2M,
    EfficientNetV2S,
)
from kcompile.applications.inception_resnet_v2 import InceptionResNetV2
from kcompile.applications.inception_v3 import InceptionV3
from kcompile.applications.mobilenet import MobileNet
from kcompile.applications.mobilenet_v2 import MobileNetV2
from kcompile.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from kcompile.applications.nasnet import NASNetLarge, NASNetMobile
from kcompile.applications.resnet import ResNet50, ResNet101, ResNet152
from kcompile.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from kcompile.applications.vgg16 import VGG16
from kcompile.applications.vgg19 import VGG19
from kcompile.applications.xception import Xception

__all__ = [
    "VGG16",
    "VGG19",
    "ConvNeXtBase",
    "ConvNeXtLarge",
    "ConvNeXtSmall",
    "ConvNeXtTiny",
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
    "EfficientNetV2L",
    "EfficientNetV2M",
    "EfficientNetV2S",
    "InceptionResNetV2",
    "InceptionV3",
    "MobileNet",
    "MobileNetV2",
    "MobileNetV3Large",
    "MobileNetV3Small",
    "NASNetLarge",
    "NASNetMobile",
    "ResNet50",
    "ResNet50V2",
    "ResNet101",
    "ResNet101V2",
    "ResNet152",
    "ResNet152V2",
    "Xception",
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
