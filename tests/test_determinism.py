"""Reconcilable: the same config yields byte-identical resource inputs, and byte-identical renders."""

from __future__ import annotations

import pytest

from tests.support import canonical
from tools.mock_engine import evaluate_stack
from tools.render import render


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_two_evaluations_of_the_same_config_are_byte_identical(stack: str) -> None:
    # two independent program runs (not the tests' shared evaluation)
    first, second = evaluate_stack(stack), evaluate_stack(stack)
    assert first.error is None and second.error is None
    assert canonical(first) == canonical(second)
    assert render(first) == render(second)
    assert len(first.registrations) > 10
