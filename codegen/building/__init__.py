"""Building and caching: LLVM IR to object code for the host or another CPU (``target``),
in parts on several cores (``split``, ``jobs``, ``forking``), functions merged before LLVM
sees them (``duplicates``), and the on-disk cache of all of it (``cache``). Artifacts'
shared libraries are ``codegen.aot``'s, above these."""
