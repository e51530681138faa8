"""Reconcilable: the same config yields byte-identical resource inputs."""

from __future__ import annotations

import pytest

from tests.support import canonical, evaluate_ok


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_two_evaluations_of_the_same_config_are_byte_identical(stack: str) -> None:
    first, second = evaluate_ok(stack), evaluate_ok(stack)
    assert canonical(first) == canonical(second)
    assert len(first.registrations) > 10
