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


MODULE_SECONDS = "airflow-k8s/module-seconds"
"""pytest's cache key: each module's seconds in the last run (setup, call and teardown of its tests)."""


def module_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # xdist (--dist loadscope --no-loadscope-reorder) hands out whole modules in this order: the real
    # modules first, the longest of the last run first among them, so that no long module starts last
    # on an otherwise idle machine (a first run, with no cache, keeps the collection order)
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    last: dict[str, float] = cache.get(MODULE_SECONDS, {}) if cache is not None else {}
    items.sort(key=lambda item: (item.get_closest_marker("real") is None, -last.get(module_of(item.nodeid), 0.0)))


_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # in the process that reports (xdist's controller, or the only one): every phase of every test
    _seconds[module_of(report.nodeid)] = _seconds.get(module_of(report.nodeid), 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is None or not _seconds or hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller saw every report and writes the figures
    cache.set(MODULE_SECONDS, {**cache.get(MODULE_SECONDS, {}), **{m: round(s, 1) for m, s in _seconds.items()}})
