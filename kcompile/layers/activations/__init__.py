"""Activation layers (Keras's layers/activations)."""
