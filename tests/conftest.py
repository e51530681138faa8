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
