"""Convolution layers (Keras's layers/convolutional)."""
