"""What the tests know of the CPU they run on."""

from __future__ import annotations

import pytest

from kcompile.codegen.building.target import for_cpu


def skip_where_the_host_is_avx2() -> None:
    """Skip a test of the x86-64-v3 (AVX2) build where the host's own build is that one:
    without AVX-512 every other test of the suite runs the AVX2 path already."""
    if not for_cpu("host").has("avx512f"):
        pytest.skip("this host has no AVX-512: its own build is the AVX2 one")
