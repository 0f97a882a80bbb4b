"""Keras layers (``kcompile.layers``), each defined where Keras's keras/src/layers keeps it."""

from kcompile.layers.activations.activation import Activation
from kcompile.layers.activations.elu import ELU
from kcompile.layers.activations.leaky_relu import LeakyReLU
from kcompile.layers.activations.prelu import PReLU
from kcompile.layers.activations.relu import ReLU
from kcompile.layers.activations.softmax import Softmax
from kcompile.layers.attention.additive_attention import AdditiveAttention
from kcompile.layers.attention.attention import Attention
from kcompile.layers.attention.grouped_query_attention import GroupQueryAttention
from kcompile.layers.attention.multi_head_attention import MultiHeadAttention
from kcompile.layers.convolutional.conv1d import Conv1D, Convolution1D
from kcompile.layers.convolutional.conv1d_transpose import Conv1DTranspose, Convolution1DTranspose
from kcompile.layers.convolutional.conv2d import Conv2D, Convolution2D
from kcompile.layers.convolutional.conv2d_transpose import Conv2DTranspose, Convolution2DTranspose
from kcompile.layers.convolutional.conv3d import Conv3D, Convolution3D
from kcompile.layers.convolutional.conv3d_transpose import Conv3DTranspose, Convolution3DTranspose
from kcompile.layers.convolutional.depthwise_conv1d import DepthwiseConv1D
from kcompile.layers.convolutional.depthwise_conv2d import DepthwiseConv2D
from kcompile.layers.convolutional.separable_conv1d import SeparableConv1D, SeparableConvolution1D
from kcompile.layers.convolutional.separable_conv2d import SeparableConv2D, SeparableConvolution2D
from kcompile.layers.core.dense import Dense
from kcompile.layers.core.einsum_dense import EinsumDense
from kcompile.layers.core.embedding import Embedding
from kcompile.layers.core.identity import Identity
from kcompile.layers.core.input_layer import Input, InputLayer
from kcompile.layers.core.lambda_layer import Lambda
from kcompile.layers.core.masking import Masking
from kcompile.layers.core.reversible_embedding import ReversibleEmbedding
from kcompile.layers.core.wrapper import Wrapper
from kcompile.layers.layer import Layer
from kcompile.layers.merging.add import Add, add
from kcompile.layers.merging.average import Average, average
from kcompile.layers.merging.concatenate import Concatenate, concatenate
from kcompile.layers.merging.dot import Dot, dot
from kcompile.layers.merging.maximum import Maximum, maximum
from kcompile.layers.merging.minimum import Minimum, minimum
from kcompile.layers.merging.multiply import Multiply, multiply
from kcompile.layers.merging.subtract import Subtract, subtract
from kcompile.layers.normalization.batch_normalization import BatchNormalization
from kcompile.layers.normalization.group_normalization import GroupNormalization
from kcompile.layers.normalization.layer_normalization import LayerNormalization
from kcompile.layers.normalization.rms_normalization import RMSNormalization
from kcompile.layers.normalization.spectral_normalization import SpectralNormalization
from kcompile.layers.normalization.unit_normalization import UnitNormalization
from kcompile.layers.pooling.adaptive_average_pooling1d import AdaptiveAveragePooling1D
from kcompile.layers.pooling.adaptive_average_pooling2d import AdaptiveAveragePooling2D
from kcompile.layers.pooling.adaptive_average_pooling3d import AdaptiveAveragePooling3D
from kcompile.layers.pooling.adaptive_max_pooling1d import AdaptiveMaxPooling1D
from kcompile.layers.pooling.adaptive_max_pooling2d import AdaptiveMaxPooling2D
from kcompile.layers.pooling.adaptive_max_pooling3d import AdaptiveMaxPooling3D
from kcompile.layers.pooling.average_pooling1d import AveragePooling1D, AvgPool1D
from kcompile.layers.pooling.average_pooling2d import AveragePooling2D, AvgPool2D
from kcompile.layers.pooling.average_pooling3d import AveragePooling3D, AvgPool3D
from kcompile.layers.pooling.global_average_pooling1d import GlobalAveragePooling1D, GlobalAvgPool1D
from kcompile.layers.pooling.global_average_pooling2d import GlobalAveragePooling2D, GlobalAvgPool2D
from kcompile.layers.pooling.global_average_pooling3d import GlobalAveragePooling3D, GlobalAvgPool3D
from kcompile.layers.pooling.global_max_pooling1d import GlobalMaxPool1D, GlobalMaxPooling1D
from kcompile.layers.pooling.global_max_pooling2d import GlobalMaxPool2D, GlobalMaxPooling2D
from kcompile.layers.pooling.global_max_pooling3d import GlobalMaxPool3D, GlobalMaxPooling3D
from kcompile.layers.pooling.max_pooling1d import MaxPool1D, MaxPooling1D
from kcompile.layers.pooling.max_pooling2d import MaxPool2D, MaxPooling2D
from kcompile.layers.pooling.max_pooling3d import MaxPool3D, MaxPooling3D
from kcompile.layers.preprocessing.category_encoding import CategoryEncoding
from kcompile.layers.preprocessing.discretization import Discretization
from kcompile.layers.preprocessing.hashed_crossing import HashedCrossing
from kcompile.layers.preprocessing.hashing import Hashing
from kcompile.layers.preprocessing.image_preprocessing.aug_mix import AugMix
from kcompile.layers.preprocessing.image_preprocessing.auto_contrast import AutoContrast
from kcompile.layers.preprocessing.image_preprocessing.center_crop import CenterCrop
from kcompile.layers.preprocessing.image_preprocessing.clahe import (
    ContrastLimitedAdaptiveHistogramEqualization,
)
from kcompile.layers.preprocessing.image_preprocessing.cut_mix import CutMix
from kcompile.layers.preprocessing.image_preprocessing.equalization import Equalization
from kcompile.layers.preprocessing.image_preprocessing.max_num_bounding_box import (
    MaxNumBoundingBoxes,
)
from kcompile.layers.preprocessing.image_preprocessing.mix_up import MixUp
from kcompile.layers.preprocessing.image_preprocessing.rand_augment import RandAugment
from kcompile.layers.preprocessing.image_preprocessing.random_brightness import RandomBrightness
from kcompile.layers.preprocessing.image_preprocessing.random_color_degeneration import (
    RandomColorDegeneration,
)
from kcompile.layers.preprocessing.image_preprocessing.random_color_jitter import RandomColorJitter
from kcompile.layers.preprocessing.image_preprocessing.random_contrast import RandomContrast
from kcompile.layers.preprocessing.image_preprocessing.random_crop import RandomCrop
from kcompile.layers.preprocessing.image_preprocessing.random_elastic_transform import (
    RandomElasticTransform,
)
from kcompile.layers.preprocessing.image_preprocessing.random_erasing import RandomErasing
from kcompile.layers.preprocessing.image_preprocessing.random_flip import RandomFlip
from kcompile.layers.preprocessing.image_preprocessing.random_gaussian_blur import (
    RandomGaussianBlur,
)
from kcompile.layers.preprocessing.image_preprocessing.random_grayscale import RandomGrayscale
from kcompile.layers.preprocessing.image_preprocessing.random_hue import RandomHue
from kcompile.layers.preprocessing.image_preprocessing.random_invert import RandomInvert
from kcompile.layers.preprocessing.image_preprocessing.random_perspective import RandomPerspective
from kcompile.layers.preprocessing.image_preprocessing.random_posterization import (
    RandomPosterization,
)
from kcompile.layers.preprocessing.image_preprocessing.random_rotation import RandomRotation
from kcompile.layers.preprocessing.image_preprocessing.random_saturation import RandomSaturation
from kcompile.layers.preprocessing.image_preprocessing.random_sharpness import RandomSharpness
from kcompile.layers.preprocessing.image_preprocessing.random_shear import RandomShear
from kcompile.layers.preprocessing.image_preprocessing.random_translation import RandomTranslation
from kcompile.layers.preprocessing.image_preprocessing.random_zoom import RandomZoom
from kcompile.layers.preprocessing.image_preprocessing.resizing import Resizing
from kcompile.layers.preprocessing.image_preprocessing.solarization import Solarization
from kcompile.layers.preprocessing.integer_lookup import IntegerLookup
from kcompile.layers.preprocessing.mel_spectrogram import MelSpectrogram
from kcompile.layers.preprocessing.normalization import Normalization
from kcompile.layers.preprocessing.pipeline import Pipeline
from kcompile.layers.preprocessing.rescaling import Rescaling
from kcompile.layers.preprocessing.stft_spectrogram import STFTSpectrogram
from kcompile.layers.preprocessing.string_lookup import StringLookup
from kcompile.layers.preprocessing.text_vectorization import TextVectorization
from kcompile.layers.regularization.activity_regularization import ActivityRegularization
from kcompile.layers.regularization.alpha_dropout import AlphaDropout
from kcompile.layers.regularization.dropout import Dropout
from kcompile.layers.regularization.gaussian_dropout import GaussianDropout
from kcompile.layers.regularization.gaussian_noise import GaussianNoise
from kcompile.layers.regularization.spatial_dropout import SpatialDropout1D, SpatialDropout2D
from kcompile.layers.regularization.spatial_dropout3d import SpatialDropout3D
from kcompile.layers.reshaping.cropping1d import Cropping1D
from kcompile.layers.reshaping.cropping2d import Cropping2D
from kcompile.layers.reshaping.cropping3d import Cropping3D
from kcompile.layers.reshaping.flatten import Flatten
from kcompile.layers.reshaping.permute import Permute
from kcompile.layers.reshaping.repeat_vector import RepeatVector
from kcompile.layers.reshaping.reshape import Reshape
from kcompile.layers.reshaping.up_sampling1d import UpSampling1D
from kcompile.layers.reshaping.up_sampling2d import UpSampling2D
from kcompile.layers.reshaping.up_sampling3d import UpSampling3D
from kcompile.layers.reshaping.zero_padding1d import ZeroPadding1D
from kcompile.layers.reshaping.zero_padding2d import ZeroPadding2D
from kcompile.layers.reshaping.zero_padding3d import ZeroPadding3D
from kcompile.layers.rnn.bidirectional import Bidirectional
from kcompile.layers.rnn.conv_lstm1d import ConvLSTM1D
from kcompile.layers.rnn.conv_lstm2d import ConvLSTM2D
from kcompile.layers.rnn.conv_lstm3d import ConvLSTM3D
from kcompile.layers.rnn.gru import GRU, GRUCell
from kcompile.layers.rnn.lstm import LSTM, LSTMCell
from kcompile.layers.rnn.rnn import RNN, StackedRNNCells
from kcompile.layers.rnn.simple_rnn import SimpleRNN, SimpleRNNCell
from kcompile.layers.rnn.time_distributed import TimeDistributed

# ops called on symbolic tensors become nodes of the model (kcompile.ops.operation).
from kcompile.ops.operation import Operation as _Operation  # noqa: F401
from kcompile.utils.lazy import lazy_attributes as _lazy_attributes
from kcompile.utils.unoffered import refuse as _refuse

# keras.layers.serialize / deserialize live with Keras's serialization (saving sits above
# the layers, so they are found by name on first use).
_lazy = _lazy_attributes(
    __name__,
    {
        "InputSpec": "kcompile.layers.input_spec:InputSpec",
        "serialize": "kcompile.saving.serialization_lib:serialize_layer",
        "deserialize": "kcompile.saving.serialization_lib:deserialize_layer",
    },
)


def __getattr__(name: str):
    try:
        return _lazy(name)
    except AttributeError:
        _refuse("layers", name)  # a Keras layer kcompile lacks: NotImplementedError, why


__all__ = [
    "ELU",
    "GRU",
    "LSTM",
    "RNN",
    "Activation",
    "ActivityRegularization",
    "AdaptiveAveragePooling1D",
    "AdaptiveAveragePooling2D",
    "AdaptiveAveragePooling3D",
    "AdaptiveMaxPooling1D",
    "AdaptiveMaxPooling2D",
    "AdaptiveMaxPooling3D",
    "Add",
    "AdditiveAttention",
    "AlphaDropout",
    "Attention",
    "AugMix",
    "AutoContrast",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "BatchNormalization",
    "Bidirectional",
    "CategoryEncoding",
    "CenterCrop",
    "Concatenate",
    "ContrastLimitedAdaptiveHistogramEqualization",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Conv3DTranspose",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "Convolution1D",
    "Convolution1DTranspose",
    "Convolution2D",
    "Convolution2DTranspose",
    "Convolution3D",
    "Convolution3DTranspose",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "CutMix",
    "Dense",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "Discretization",
    "Dot",
    "Dropout",
    "EinsumDense",
    "Embedding",
    "Equalization",
    "Flatten",
    "GRUCell",
    "GaussianDropout",
    "GaussianNoise",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPool3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GroupNormalization",
    "GroupQueryAttention",
    "HashedCrossing",
    "Hashing",
    "Identity",
    "Input",
    "InputLayer",
    "IntegerLookup",
    "LSTMCell",
    "Lambda",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "MaxNumBoundingBoxes",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "Maximum",
    "MelSpectrogram",
    "Minimum",
    "MixUp",
    "MultiHeadAttention",
    "Multiply",
    "Normalization",
    "PReLU",
    "Permute",
    "Pipeline",
    "RMSNormalization",
    "RandAugment",
    "RandomBrightness",
    "RandomColorDegeneration",
    "RandomColorJitter",
    "RandomContrast",
    "RandomCrop",
    "RandomElasticTransform",
    "RandomErasing",
    "RandomFlip",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomHue",
    "RandomInvert",
    "RandomPerspective",
    "RandomPosterization",
    "RandomRotation",
    "RandomSaturation",
    "RandomSharpness",
    "RandomShear",
    "RandomTranslation",
    "RandomZoom",
    "ReLU",
    "RepeatVector",
    "Rescaling",
    "Reshape",
    "Resizing",
    "ReversibleEmbedding",
    "STFTSpectrogram",
    "SeparableConv1D",
    "SeparableConv2D",
    "SeparableConvolution1D",
    "SeparableConvolution2D",
    "SimpleRNN",
    "SimpleRNNCell",
    "Softmax",
    "Solarization",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "SpectralNormalization",
    "StackedRNNCells",
    "StringLookup",
    "Subtract",
    "TextVectorization",
    "TimeDistributed",
    "UnitNormalization",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "Wrapper",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "add",
    "average",
    "concatenate",
    "dot",
    "maximum",
    "minimum",
    "multiply",
    "subtract",
]
