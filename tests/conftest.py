import os

import numpy as np
import pytest

# Every graph the runtime prepares is verified and must survive print -> parse.
os.environ.setdefault("KCOMPILE_VERIFY", "1")
# Every buffer between guard zones, checked after every kernel (kcompile.runtime.guarded).
os.environ.setdefault("KCOMPILE_CHECK", "1")


@pytest.fixture(autouse=True)
def _fresh_session():
    import kcompile

    kcompile.backend.clear_session()
    kcompile.utils.set_random_seed(1234)
    # A failing test shows kcompile's own frames (tests/test_errors.py turns the user's
    # filtering back on).
    kcompile.config.disable_traceback_filtering()
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
