"""The quick tier's list of slow tests names tests that exist (a renamed test would
otherwise drop out of the list silently and slow the quick tier down)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import SLOW_IN_THE_QUICK_TIER

ROOT = Path(__file__).resolve().parent.parent


def test_every_listed_test_exists():
    missing = []
    for node in sorted(SLOW_IN_THE_QUICK_TIER):
        path, _, name = node.partition("::")
        function = name.split("[")[0]
        source = ROOT / path
        if not source.is_file() or not re.search(rf"^def {function}\(", source.read_text(), re.M):
            missing.append(node)
    assert missing == []
