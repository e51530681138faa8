from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import postgres_server
from tests.support import Evaluation, evaluate_ok


@pytest.fixture(scope="session")
def dev() -> Evaluation:
    return evaluate_ok("dev")


@pytest.fixture(scope="session")
def prod() -> Evaluation:
    return evaluate_ok("prod")


@pytest.fixture(scope="session")
def postgres() -> Iterator[postgres_server.PostgresServer]:
    """One real PostgreSQL for the whole run; each test module uses its own databases."""
    server = postgres_server.start()
    yield server
    server.stop()


REAL_SERVERS = {"postgres", "server"}
"""Session fixtures that start real servers: a test that uses one belongs to the full suite only."""


def pytest_itemcollected(item: pytest.Item) -> None:
    # per item, during collection: the `real` mark is there before `-m` selects
    if REAL_SERVERS & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.real)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # xdist (--dist loadscope --no-loadscope-reorder) hands out whole modules in this order: the real
    # modules go first, so that the long ones do not start last on an otherwise idle machine
    items.sort(key=lambda item: item.get_closest_marker("real") is None)
