"""The fault suite: real localmaker processes attacked the way a hostile page, a bad input or a crash would.

Every test here is marked ``faults`` (``pytest -m faults`` runs the suite alone; ``make test`` runs it
with everything else). Servers come from the same launcher the localmaker tests use.
"""

from __future__ import annotations

import pytest

from tests.localmaker.conftest import ROLE, TEST_IMAGES, Server, start_server

__all__ = ["ROLE", "TEST_IMAGES", "Server", "start_server"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
