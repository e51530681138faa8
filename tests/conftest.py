from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests import airflow_stack, kube_apiserver, observed_stack, postgres_server
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


@pytest.fixture(scope="session")
def observed_control_plane(
    postgres: postgres_server.PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[observed_stack.Observed]:
    """One control plane, run once, that the metrics and PgBouncer modules both read (tests/observed_stack.py)."""
    with observed_stack.observed(postgres, tmp_path_factory.mktemp("observed-dags")) as seen:
        yield seen


@pytest.fixture(scope="session")
def kube_api_server() -> Iterator[kube_apiserver.ApiServer]:
    """One real kube-apiserver (with etcd) per session, every vendored CRD installed; the modules in
    kube_apiserver.MODULES use it, each in namespaces of its own."""
    with kube_apiserver.running() as server:
        yield server


@pytest.fixture(scope="session")
def dev_api_server(postgres: postgres_server.PostgresServer) -> Iterator[airflow_stack.RunningApiServer]:
    """The dev stack's api-server, started once, for the modules in airflow_stack.DEV_API_SERVER_MODULES."""
    with airflow_stack.dev_api_server(postgres) as running:
        yield running


REAL_SERVERS = {"postgres", "server", "observed_control_plane", "kube_api_server", "dev_api_server"}
"""Session fixtures that start real servers: a test that uses one belongs to the full suite only."""


def pytest_itemcollected(item: pytest.Item) -> None:
    # per item, during collection: the `real` mark is there before `-m` selects
    if REAL_SERVERS & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.real)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # xdist (--dist loadscope --no-loadscope-reorder) hands out whole modules in this order: the real
    # modules go first, so that the long ones do not start last on an otherwise idle machine
    items.sort(key=lambda item: item.get_closest_marker("real") is None)


SHARED_SCOPES = {
    **{module: "observed control plane" for module in observed_stack.MODULES},
    **{module: "kube-apiserver" for module in kube_apiserver.MODULES},
    **{module: "dev api-server" for module in airflow_stack.DEV_API_SERVER_MODULES},
}
"""Test modules that share a session fixture's servers, by the name of what they share."""


class SharedServerScheduling(LoadScopeScheduling):
    """xdist's --dist loadscope (a module is one unit of work), except that the modules sharing a session
    fixture's servers (SHARED_SCOPES) are one unit: they run on one worker, which starts them once."""

    def _split_scope(self, nodeid: str) -> str:
        return SHARED_SCOPES.get(nodeid.split("::", 1)[0]) or super()._split_scope(nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling | None:
    if config.getvalue("dist") != "loadscope":
        return None
    return SharedServerScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    # `-n auto`: one worker more than the cores. The real tests spend about a quarter of their time
    # waiting on Airflow's own loops (a scheduler's tick, a DAG parse); a third worker on 2 cores fills
    # those gaps (docs/architecture.md#tests has the measurements). --maxprocesses caps it.
    return (os.cpu_count() or 1) + 1
