"""Recurrent layers (Keras's layers/rnn)."""
