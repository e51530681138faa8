from __future__ import annotations

import pytest

from tests.support import Evaluation, evaluate_ok


@pytest.fixture(scope="session")
def dev() -> Evaluation:
    return evaluate_ok("dev")


@pytest.fixture(scope="session")
def prod() -> Evaluation:
    return evaluate_ok("prod")
