"""Layers made the same way on Keras 3 and on kcompile (``L`` is either ``layers``
module), whose ``get_config()`` must agree: every built-in layer with its required
arguments, and the weight layers again with non-default initializers, regularizers and
constraints (a config that drops one loses it in ``from_config``, ``clone_model`` and a
saved file). ``fixture_scripts/make_layer_config_fixtures.py`` stores Keras's configs;
``test_layer_configs.py`` compares."""

from __future__ import annotations

# name: constructor expression over ``L``. Minimal arguments first.
CASES: dict[str, str] = {
    "Activation": "L.Activation('relu')",
    "ActivityRegularization": "L.ActivityRegularization(l1=0.1)",
    "AdaptiveAveragePooling1D": "L.AdaptiveAveragePooling1D(3)",
    "AdaptiveAveragePooling2D": "L.AdaptiveAveragePooling2D((2, 3))",
    "AdaptiveMaxPooling1D": "L.AdaptiveMaxPooling1D(3)",
    "AdaptiveMaxPooling2D": "L.AdaptiveMaxPooling2D((2, 3))",
    "Add": "L.Add()",
    "AdditiveAttention": "L.AdditiveAttention()",
    "AlphaDropout": "L.AlphaDropout(0.2)",
    "Attention": "L.Attention(use_scale=True)",
    "Average": "L.Average()",
    "AveragePooling1D": "L.AveragePooling1D(2)",
    "AveragePooling2D": "L.AveragePooling2D((2, 2), padding='same')",
    "AveragePooling3D": "L.AveragePooling3D(2)",
    "BatchNormalization": "L.BatchNormalization()",
    "CategoryEncoding": "L.CategoryEncoding(5, output_mode='one_hot')",
    "CenterCrop": "L.CenterCrop(4, 5)",
    "Concatenate": "L.Concatenate(axis=1)",
    "Conv1D": "L.Conv1D(4, 3)",
    "Conv1DTranspose": "L.Conv1DTranspose(4, 3, strides=2)",
    "Conv2D": "L.Conv2D(4, 3)",
    "Conv2DTranspose": "L.Conv2DTranspose(4, 3)",
    "Conv3D": "L.Conv3D(4, 3)",
    "Conv3DTranspose": "L.Conv3DTranspose(4, 3)",
    "ConvLSTM1D": "L.ConvLSTM1D(4, 3)",
    "ConvLSTM2D": "L.ConvLSTM2D(4, 3)",
    "Cropping1D": "L.Cropping1D(1)",
    "Cropping2D": "L.Cropping2D(1)",
    "Cropping3D": "L.Cropping3D(1)",
    "Dense": "L.Dense(3)",
    "DepthwiseConv1D": "L.DepthwiseConv1D(3)",
    "DepthwiseConv2D": "L.DepthwiseConv2D(3)",
    "Discretization": "L.Discretization(bin_boundaries=[0.0, 1.0])",
    "Dot": "L.Dot(axes=1)",
    "Dropout": "L.Dropout(0.3)",
    "ELU": "L.ELU()",
    "EinsumDense": "L.EinsumDense('ab,bc->ac', 3)",
    "Embedding": "L.Embedding(10, 4)",
    "Flatten": "L.Flatten()",
    "GRU": "L.GRU(3)",
    "GaussianDropout": "L.GaussianDropout(0.2)",
    "GaussianNoise": "L.GaussianNoise(0.2)",
    "GlobalAveragePooling1D": "L.GlobalAveragePooling1D()",
    "GlobalAveragePooling2D": "L.GlobalAveragePooling2D(keepdims=True)",
    "GlobalMaxPooling1D": "L.GlobalMaxPooling1D()",
    "GlobalMaxPooling2D": "L.GlobalMaxPooling2D()",
    "GroupNormalization": "L.GroupNormalization(groups=2)",
    "GroupQueryAttention": "L.GroupQueryAttention(4, 2, 1)",
    "Hashing": "L.Hashing(7)",
    "Identity": "L.Identity()",
    "LSTM": "L.LSTM(3)",
    "LayerNormalization": "L.LayerNormalization()",
    "LeakyReLU": "L.LeakyReLU()",
    "Masking": "L.Masking()",
    "MaxPooling1D": "L.MaxPooling1D()",
    "MaxPooling2D": "L.MaxPooling2D()",
    "MaxPooling3D": "L.MaxPooling3D()",
    "Maximum": "L.Maximum()",
    "Minimum": "L.Minimum()",
    "MultiHeadAttention": "L.MultiHeadAttention(2, 3)",
    "Multiply": "L.Multiply()",
    "Normalization": "L.Normalization()",
    "PReLU": "L.PReLU()",
    "Permute": "L.Permute((2, 1))",
    "RMSNormalization": "L.RMSNormalization()",
    "ReLU": "L.ReLU()",
    "RandomBrightness": "L.RandomBrightness(0.2)",
    "RandomContrast": "L.RandomContrast(0.2)",
    "RandomCrop": "L.RandomCrop(4, 4, seed=7)",  # (without one, Keras writes a drawn seed)
    "RandomFlip": "L.RandomFlip()",
    "RandomRotation": "L.RandomRotation(0.1)",
    "RandomTranslation": "L.RandomTranslation(0.1, 0.1)",
    "RandomZoom": "L.RandomZoom(0.1)",
    "RepeatVector": "L.RepeatVector(3)",
    "Rescaling": "L.Rescaling(1 / 255)",
    "Reshape": "L.Reshape((2, 3))",
    "Resizing": "L.Resizing(4, 5)",
    "SeparableConv1D": "L.SeparableConv1D(4, 3)",
    "SeparableConv2D": "L.SeparableConv2D(4, 3)",
    "SimpleRNN": "L.SimpleRNN(3)",
    "Softmax": "L.Softmax()",
    "SpatialDropout1D": "L.SpatialDropout1D(0.2)",
    "SpatialDropout2D": "L.SpatialDropout2D(0.2)",
    "Subtract": "L.Subtract()",
    "UnitNormalization": "L.UnitNormalization()",
    "UpSampling1D": "L.UpSampling1D()",
    "UpSampling2D": "L.UpSampling2D()",
    "UpSampling3D": "L.UpSampling3D()",
    "ZeroPadding1D": "L.ZeroPadding1D()",
    "ZeroPadding2D": "L.ZeroPadding2D()",
    "ZeroPadding3D": "L.ZeroPadding3D()",
    # Non-default weight arguments: each must survive the config.
    "Dense/rich": (
        "L.Dense(3, activation='relu', use_bias=False, kernel_initializer='ones', "
        "kernel_regularizer='l2', activity_regularizer='l1', kernel_constraint='non_neg')"
    ),
    "Conv2D/rich": (
        "L.Conv2D(4, 3, strides=2, padding='same', kernel_initializer='he_normal', "
        "bias_initializer='ones', kernel_regularizer='l1', bias_regularizer='l2')"
    ),
    "LSTM/rich": (
        "L.LSTM(3, return_sequences=True, kernel_initializer='glorot_normal', "
        "recurrent_initializer='identity', bias_initializer='ones', kernel_regularizer='l2', "
        "recurrent_regularizer='l1', dropout=0.1)"
    ),
    "GRU/rich": (
        "L.GRU(3, recurrent_initializer='glorot_uniform', kernel_regularizer='l1', "
        "recurrent_regularizer='l2', bias_constraint='non_neg', dropout=0.1, seed=3)"
    ),
    "SimpleRNN/rich": "L.SimpleRNN(3, activation='relu', kernel_regularizer='l2')",
    "Embedding/rich": (
        "L.Embedding(10, 4, embeddings_initializer='ones', embeddings_regularizer='l2', "
        "mask_zero=True)"
    ),
    "BatchNormalization/rich": (
        "L.BatchNormalization(momentum=0.9, epsilon=1e-3, center=False, "
        "gamma_initializer='zeros', gamma_regularizer='l2')"
    ),
    "LayerNormalization/rich": "L.LayerNormalization(epsilon=1e-5, beta_initializer='ones')",
    "DepthwiseConv2D/rich": (
        "L.DepthwiseConv2D(3, depth_multiplier=2, depthwise_initializer='ones', "
        "depthwise_regularizer='l2')"
    ),
    "SeparableConv2D/rich": (
        "L.SeparableConv2D(4, 3, depthwise_initializer='ones', pointwise_initializer='zeros', "
        "pointwise_regularizer='l1')"
    ),
    "Conv1D/rich": "L.Conv1D(4, 3, padding='causal', dilation_rate=2, kernel_regularizer='l2')",
    "MultiHeadAttention/rich": (
        "L.MultiHeadAttention(2, 3, value_dim=4, dropout=0.1, kernel_initializer='ones', "
        "kernel_regularizer='l2')"
    ),
    "Conv2DTranspose/rich": (
        "L.Conv2DTranspose(4, 3, kernel_regularizer='l2', kernel_constraint='max_norm')"
    ),
    "Conv3D/rich": "L.Conv3D(2, 2, kernel_constraint='non_neg', bias_regularizer='l1')",
    "DepthwiseConv1D/rich": (
        "L.DepthwiseConv1D(3, depthwise_constraint='unit_norm', bias_regularizer='l2')"
    ),
    "ConvLSTM1D/rich": "L.ConvLSTM1D(2, 3, recurrent_constraint='non_neg', seed=2)",
    "GroupNormalization/rich": (
        "L.GroupNormalization(groups=2, gamma_regularizer='l2', beta_constraint='non_neg')"
    ),
    "MultiHeadAttention/window": (
        "L.MultiHeadAttention(2, 3, sliding_window=2, bias_constraint='non_neg')"
    ),
    "Dropout/seed": "L.Dropout(0.3, seed=5)",
    "Flatten/channels_first": "L.Flatten(data_format='channels_first')",
    "ZeroPadding2D/channels_first": "L.ZeroPadding2D(((1, 2), (0, 1)), data_format='channels_first')",
    "Cropping2D/channels_first": "L.Cropping2D(((1, 0), (0, 2)), data_format='channels_first')",
    "UpSampling2D/channels_first": "L.UpSampling2D(3, data_format='channels_first')",
    "MaxPooling1D/args": "L.MaxPooling1D(3, strides=1, padding='same')",
    "PReLU/rich": "L.PReLU(alpha_initializer='ones', shared_axes=[1])",
    "EinsumDense/rich": (
        "L.EinsumDense('abc,cd->abd', (4, 3), bias_axes='d', kernel_initializer='ones', "
        "kernel_regularizer='l2')"
    ),
}
