"""Keras layers (``kcompile.layers``), each defined where Keras's keras/src/layers keeps it."""

from kcompile.layers.activations.activation import Activation
from kcompile.layers.activations.leaky_relu import LeakyReLU
from kcompile.layers.activations.relu import ReLU
from kcompile.layers.activations.softmax import Softmax
from kcompile.layers.attention.attention import Attention
from kcompile.layers.attention.multi_head_attention import MultiHeadAttention
from kcompile.layers.convolutional.conv1d import Conv1D
from kcompile.layers.convolutional.conv1d_transpose import Conv1DTranspose
from kcompile.layers.convolutional.conv2d import Conv2D
from kcompile.layers.convolutional.conv2d_transpose import Conv2DTranspose
from kcompile.layers.convolutional.depthwise_conv2d import DepthwiseConv2D
from kcompile.layers.convolutional.separable_conv1d import SeparableConv1D
from kcompile.layers.convolutional.separable_conv2d import SeparableConv2D
from kcompile.layers.core.dense import Dense
from kcompile.layers.core.embedding import Embedding
from kcompile.layers.core.input_layer import Input, InputLayer
from kcompile.layers.core.lambda_layer import Lambda
from kcompile.layers.core.masking import Masking
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
from kcompile.layers.normalization.unit_normalization import UnitNormalization
from kcompile.layers.pooling.average_pooling1d import AveragePooling1D
from kcompile.layers.pooling.average_pooling2d import AveragePooling2D
from kcompile.layers.pooling.global_average_pooling1d import GlobalAveragePooling1D
from kcompile.layers.pooling.global_average_pooling2d import GlobalAveragePooling2D
from kcompile.layers.pooling.global_max_pooling1d import GlobalMaxPooling1D
from kcompile.layers.pooling.global_max_pooling2d import GlobalMaxPooling2D
from kcompile.layers.pooling.max_pooling1d import MaxPooling1D
from kcompile.layers.pooling.max_pooling2d import MaxPooling2D
from kcompile.layers.preprocessing.image_preprocessing.center_crop import CenterCrop
from kcompile.layers.preprocessing.image_preprocessing.resizing import Resizing
from kcompile.layers.preprocessing.integer_lookup import IntegerLookup
from kcompile.layers.preprocessing.normalization import Normalization
from kcompile.layers.preprocessing.rescaling import Rescaling
from kcompile.layers.preprocessing.string_lookup import StringLookup
from kcompile.layers.preprocessing.text_vectorization import TextVectorization
from kcompile.layers.regularization.activity_regularization import ActivityRegularization
from kcompile.layers.regularization.dropout import Dropout
from kcompile.layers.regularization.gaussian_dropout import GaussianDropout
from kcompile.layers.regularization.gaussian_noise import GaussianNoise
from kcompile.layers.regularization.spatial_dropout import SpatialDropout1D, SpatialDropout2D
from kcompile.layers.reshaping.cropping1d import Cropping1D
from kcompile.layers.reshaping.cropping2d import Cropping2D
from kcompile.layers.reshaping.flatten import Flatten
from kcompile.layers.reshaping.permute import Permute
from kcompile.layers.reshaping.repeat_vector import RepeatVector
from kcompile.layers.reshaping.reshape import Reshape
from kcompile.layers.reshaping.up_sampling1d import UpSampling1D
from kcompile.layers.reshaping.up_sampling2d import UpSampling2D
from kcompile.layers.reshaping.zero_padding1d import ZeroPadding1D
from kcompile.layers.reshaping.zero_padding2d import ZeroPadding2D
from kcompile.layers.rnn.bidirectional import Bidirectional
from kcompile.layers.rnn.gru import GRU
from kcompile.layers.rnn.lstm import LSTM
from kcompile.layers.rnn.simple_rnn import SimpleRNN
from kcompile.layers.rnn.time_distributed import TimeDistributed

# ops called on symbolic tensors become nodes of the model (kcompile.ops.operation).
from kcompile.ops.operation import Operation as _Operation  # noqa: F401

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "ActivityRegularization",
    "Add",
    "Attention",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Bidirectional",
    "CenterCrop",
    "Concatenate",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "Conv2DTranspose",
    "Cropping1D",
    "Cropping2D",
    "Dense",
    "DepthwiseConv2D",
    "Dot",
    "Dropout",
    "Embedding",
    "Flatten",
    "GaussianDropout",
    "GaussianNoise",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GroupNormalization",
    "Input",
    "InputLayer",
    "IntegerLookup",
    "Lambda",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "MaxPooling1D",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "MultiHeadAttention",
    "Multiply",
    "Normalization",
    "Permute",
    "ReLU",
    "RepeatVector",
    "Rescaling",
    "Reshape",
    "Resizing",
    "SeparableConv1D",
    "SeparableConv2D",
    "SimpleRNN",
    "Softmax",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "StringLookup",
    "Subtract",
    "TextVectorization",
    "TimeDistributed",
    "UnitNormalization",
    "UpSampling1D",
    "UpSampling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "add",
    "average",
    "concatenate",
    "dot",
    "maximum",
    "minimum",
    "multiply",
    "subtract",
]
