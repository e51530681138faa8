"""Kubernetes resource quantities ("500m", "2Gi", "1.5"), parsed exactly as the API server does."""

from __future__ import annotations

import re
from decimal import Decimal

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)

QUANTITY_HELP = 'a Kubernetes quantity such as "500m", "1", "512Mi" or "2Gi"'


def parse_quantity(text: str) -> Decimal | None:
    """The quantity's value in base units, or None if ``text`` is not a non-negative quantity."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    number = Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def mebibytes(text: str) -> int:
    """A memory quantity in whole MiB (rounded down); the text must already be valid."""
    value = parse_quantity(text)
    if value is None:
        raise ValueError(f"not a quantity: {text!r}")
    return int(value // (2**20))
