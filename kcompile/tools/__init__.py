"""kcompile's own tools: the ``kcompile`` command, inspection of compiled models, plots, the fuzzer."""
