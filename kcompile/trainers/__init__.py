"""Keras's ``fit``, ``evaluate`` and ``predict``: the trainer a model inherits, its loops, data and logs."""
