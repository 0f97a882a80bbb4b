"""Pooling layers (Keras's layers/pooling)."""
