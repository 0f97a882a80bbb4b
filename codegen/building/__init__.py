"""Building and caching: LLVM IR to object code for the host or another CPU (``target``),
in parts on several cores (``split``, ``jobs``, ``forking``), shared libraries for
artifacts (``aot``), and the on-disk cache of all of it (``cache``)."""
