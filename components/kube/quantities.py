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


_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIXES = {0: "", 10: "Ki", 20: "Mi", 30: "Gi", 40: "Ti", 50: "Pi", 60: "Ei"}


def canonical_quantity(text: str) -> str:
    """The form the API server stores a quantity in (apimachinery's ``Quantity.String``).

    ``1024Mi`` becomes ``1Gi``, ``1000m`` becomes ``1``, ``0.5`` becomes ``500m``. Written this way,
    what the program sends is what the cluster returns, so no preview shows a difference that is not
    one (e.g. a StatefulSet claim template, which would read as a replacement).
    """
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    value = parse_quantity(text)
    assert value is not None
    suffix = match["suffix"] or ""
    if suffix in _BINARY and value == value.to_integral_value() and abs(value) >= 1024:
        whole = int(value)
        shift = 0
        while shift < 60 and whole % (1 << (shift + 10)) == 0:
            shift += 10
        return f"{whole >> shift}{_BINARY_SUFFIXES[shift]}"
    exponent_form = suffix[:1] in ("e", "E")
    # Decimal: the largest power of 1000 that leaves a whole mantissa (at most nano precision, rounded up).
    nanos = (value * Decimal("1e9")).to_integral_value(rounding="ROUND_CEILING")
    exponent = -9
    while exponent < 18 and nanos % 1000 == 0 and nanos != 0:
        nanos //= 1000
        exponent += 3
    if nanos == 0:
        exponent = 0
    if exponent_form:
        return f"{int(nanos)}" if exponent == 0 else f"{int(nanos)}e{exponent}"
    return f"{int(nanos)}{_DECIMAL_SUFFIXES[exponent]}"
