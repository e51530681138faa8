"""The base of every config section: pydantic v2, with cross-field rules that still run next to field errors.

Pydantic checks each field (types, choices, bounds, the value checks in ``checks.py``) and rejects
unknown keys. A section's :meth:`Section.rules` then checks what spans several fields ("limits at least
the requests", "git-sync needs a repository"). Pydantic alone would skip those rules as soon as any
field of the section failed; here they run on the fields that did validate, with the failed ones set
to :data:`INVALID`, so one run reports every problem, as a user fixing a stack file wants.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

RULE_ERROR = "stack_config_rule"
CHECK_ERROR = "stack_config_check"
"""Error types of the stack's own messages (the converter in ``loading.py`` shows them as written)."""


class _Invalid:
    """Stands in for a field that failed validation, so rules can skip it."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def valid(*values: object) -> bool:
    return all(value is not INVALID for value in values)


def show(value: Any) -> str:
    """A value as an error message shows it: JSON, so strings are quoted and types visible."""
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass(frozen=True)
class Rule:
    """A cross-field problem: where (relative to the section), the value as shown, what is allowed."""

    loc: tuple[str | int, ...]
    shown: str
    allowed: str

    def error(self) -> InitErrorDetails:
        return InitErrorDetails(
            type=PydanticCustomError(RULE_ERROR, "{allowed}", {"allowed": self.allowed, "shown": self.shown}),
            loc=self.loc,
            input=None,
        )


def check_error(allowed: str) -> PydanticCustomError:
    """Raised by a value check: ``allowed`` says what would be accepted."""
    return PydanticCustomError(CHECK_ERROR, "{allowed}", {"allowed": allowed})


class Section(BaseModel):
    """One block of the stack config: camelCase keys, unknown keys rejected, immutable, strict types."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
        validate_default=True,
    )

    def rules(self) -> Iterator[Rule]:
        """Cross-field problems; fields that failed validation are INVALID here."""
        return iter(())

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Self:
        try:
            section = handler(data)
        except ValidationError as error:
            partial = cls._partial(data, error, handler)
            rules = [rule.error() for rule in partial.rules()] if partial is not None else []
            if not rules:
                raise
            raise ValidationError.from_exception_data(cls.__name__, [*_again(error), *rules]) from None
        rules = [rule.error() for rule in section.rules()]
        if rules:
            raise ValidationError.from_exception_data(cls.__name__, rules)
        return section

    @classmethod
    def _partial(cls, data: Any, error: ValidationError, handler: ValidatorFunctionWrapHandler) -> Self | None:
        """The section built from the fields that validated, the others INVALID (None if impossible)."""
        if not isinstance(data, dict):
            return None
        failed = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
        by_key = {field.alias or name: name for name, field in cls.model_fields.items()}
        if failed - set(by_key):
            return None  # an unknown key: nothing to check across fields yet
        kept = {key: value for key, value in data.items() if key not in failed}  # pyright: ignore[reportUnknownVariableType]
        try:
            partial = handler(kept)
        except ValidationError:
            return None
        for key in failed:
            object.__setattr__(partial, by_key[key], INVALID)
        return partial


def _again(error: ValidationError) -> list[InitErrorDetails]:
    """The errors pydantic reported, re-raisable next to the rules' (types and context kept)."""
    details: list[InitErrorDetails] = []
    for found in error.errors():
        context: dict[str, Any] = dict(found.get("ctx") or {})
        if found["type"] in (RULE_ERROR, CHECK_ERROR):
            kind: Any = PydanticCustomError(found["type"], "{allowed}", context)
        else:
            kind = found["type"]
        details.append(InitErrorDetails(type=kind, loc=found["loc"], input=found["input"], ctx=context))
    return details
