"""Regularization layers (Keras's layers/regularization)."""
