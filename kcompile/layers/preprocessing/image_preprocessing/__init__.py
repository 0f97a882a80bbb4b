"""Image preprocessing layers (Keras's layers/preprocessing/image_preprocessing)."""
