"""The runtime library: native code every model calls, built once per machine and cached
(``runtime_library``): the thread pool, the matrix products (``gemm``, ``bf16_gemm``) and
convolutions (``conv``, ``bf16_conv``, ...)."""
