"""From Pulumi's config to a validated :class:`StackConfig`, or one error naming every problem.

Each problem names its full key, the value (secrets as ``[secret]``) and what is allowed, in the same
words whatever pydantic's own message would be, before any resource is registered.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from components.config.base import CHECK_ERROR, RULE_ERROR, show
from components.config.model import StackConfig

PROJECT = "airflow-k8s"
PREFIX = f"{PROJECT}:"


@dataclass(frozen=True)
class Problem:
    key: str
    value: str
    allowed: str

    def __str__(self) -> str:
        return f"{self.key} = {self.value}: {self.allowed}"


class ConfigError(ValueError):
    """Raised once, with every problem found, before any resource is registered."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")


# --- types, as the messages describe them -------------------------------------------------------------


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _base(annotation: Any) -> Any:
    """The annotation without Optional and Annotated metadata."""
    annotation = _unwrap_optional(annotation)
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return _unwrap_optional(annotation)


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def describe(annotation: Any) -> str:
    annotation = _base(annotation)
    origin = get_origin(annotation)
    if origin is list:
        return f"list of {describe(get_args(annotation)[0])}"
    if origin is dict:
        return f"map of string to {describe(get_args(annotation)[1])}"
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    if annotation is SecretStr:
        return "string (secret)"
    if is_model(annotation):
        return "object"
    return {str: "string", int: "integer", bool: "boolean", Any: "object"}.get(annotation, str(annotation))


def is_secret(annotation: Any) -> bool:
    annotation = _base(annotation)
    if annotation is SecretStr:
        return True
    return any(is_secret(arg) for arg in get_args(annotation))


def nested_secrets(annotation: Any, value: Any, path: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    """Where a structured value holds secret fields (a Pulumi object with a plain-text secret inside)."""
    base = _base(annotation)
    found: list[tuple[str | int, ...]] = []
    if is_model(base) and isinstance(value, dict):
        for key, item in typing.cast("dict[str, Any]", value).items():
            field = _field(base, key)
            if field is None or item is None:
                continue
            if _base(field.annotation) is SecretStr:
                found.append((*path, key))
            else:
                found += nested_secrets(field.annotation, item, (*path, key))
    elif get_origin(base) is list and isinstance(value, list):
        for i, item in enumerate(typing.cast("list[Any]", value)):
            found += nested_secrets(get_args(base)[0], item, (*path, i))
    return found


def keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, field in model.model_fields.items():
        if key in (field.alias, name):
            return field
    return None


@dataclass(frozen=True)
class _Located:
    """What an error location points at: the model holding the key, and the key's field."""

    model: type[BaseModel] | None
    field: FieldInfo | None
    annotation: Any


def _locate(loc: tuple[int | str, ...]) -> _Located:
    model: type[BaseModel] | None = StackConfig
    annotation: Any = StackConfig
    field: FieldInfo | None = None
    holder: type[BaseModel] | None = StackConfig
    for part in loc:
        base = _base(annotation)
        if isinstance(part, int) or (get_origin(base) is dict and not is_model(base)):
            args = get_args(base)
            annotation = args[-1] if args else Any
            holder = None
            continue
        model = base if is_model(base) else None
        holder = model
        field = _field(model, part) if model is not None else None
        annotation = _annotation(field) if field is not None else Any
    return _Located(holder, field, annotation)


def _annotation(field: FieldInfo) -> Any:
    """The field's type with its constraints (pydantic keeps them apart, in ``metadata``)."""
    if not field.metadata:
        return field.annotation
    return typing.Annotated[(field.annotation, *field.metadata)]  # pyright: ignore[reportInvalidTypeArguments]


# --- pydantic errors, in the stack's words ---------------------------------------------------------------


def key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _allowed(error: ErrorDetails, where: _Located) -> str:
    kind = error["type"]
    context: dict[str, Any] = dict(error.get("ctx") or {})
    annotation = where.annotation
    if kind in (CHECK_ERROR, RULE_ERROR):
        return str(context["allowed"])
    if kind == "missing":
        doc = where.field.description if where.field is not None else ""
        return f"required: {doc}"
    if kind == "extra_forbidden":
        allowed = keys_of(where.model) if where.model is not None else []
        return f"unknown key; allowed keys here: {', '.join(allowed)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind == "greater_than_equal":
        bound = context.get("ge")
        return "must be a non-negative integer" if bound == 0 else f"must be an integer of at least {bound}"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "string_type":
        return "must be a string"
    if kind == "literal_error":
        return "must be one of " + ", ".join(json.dumps(choice) for choice in get_args(_base(annotation)))
    if kind in ("model_type", "model_attributes_type", "dataclass_type") or (
        kind == "dict_type" and is_model(_base(annotation))
    ):
        base = _base(annotation)
        keys = ", ".join(keys_of(base)) if is_model(base) else ""
        return f"must be an object with keys {keys}"
    if kind in ("dict_type", "list_type"):
        return f"must be a {describe(annotation)}"
    return error["msg"]


def _shown(error: ErrorDetails, where: _Located, secret_scope: bool) -> str:
    if error["type"] == RULE_ERROR:
        return str(dict(error.get("ctx") or {})["shown"])
    if error["type"] == "missing":
        return "(not set)"
    if secret_scope or is_secret(where.annotation):
        return "[secret]"
    value = error["input"]
    if isinstance(value, SecretStr):
        return "[secret]"
    return show(value)


def problems_of(error: ValidationError, prefix: str = PREFIX) -> list[Problem]:
    found: list[Problem] = []
    for detail in error.errors():
        loc = tuple(detail["loc"])
        where = _locate(loc)
        top = _field(StackConfig, str(loc[0])) if loc else None
        secret_scope = top is not None and is_secret(top.annotation)
        found.append(Problem(prefix + key_path(loc), _shown(detail, where, secret_scope), _allowed(detail, where)))
    return found


# --- Pulumi's config ---------------------------------------------------------------------------------------


def load_stack_config(raw_config: Mapping[str, str], secret_keys: set[str]) -> StackConfig:
    """Validate Pulumi's flat config map (``project:key`` -> string) into a StackConfig.

    Top-level Pulumi config values arrive as strings; structured ones (objects, lists, numbers,
    booleans) arrive JSON-encoded, exactly as the Pulumi CLI passes them to the program.
    """
    problems: list[Problem] = []
    fields_by_key = {field.alias or name: field for name, field in StackConfig.model_fields.items()}
    decoded: dict[str, Any] = {}
    for full_key, text in sorted(raw_config.items()):
        if not full_key.startswith(PREFIX):
            continue
        key = full_key.removeprefix(PREFIX)
        field = fields_by_key.get(key)
        if field is None:
            allowed = ", ".join(sorted(fields_by_key))
            problems.append(Problem(full_key, "[not shown]", f"unknown key; allowed keys: {allowed}"))
            continue
        secret = is_secret(field.annotation)
        if secret and full_key not in secret_keys:
            problems.append(Problem(full_key, "[secret]", f"must be set with `pulumi config set --secret {key} ...`"))
        if _base(field.annotation) in (str, SecretStr) or get_origin(_base(field.annotation)) is Literal:
            decoded[key] = text
            continue
        try:
            decoded[key] = json.loads(text)
        except json.JSONDecodeError:
            shown = "[secret]" if secret else show(text)
            allowed = f"must be a {describe(field.annotation)} (structured YAML in the stack file)"
            problems.append(Problem(full_key, shown, allowed))
            continue
        if full_key not in secret_keys:
            for path in nested_secrets(field.annotation, decoded[key], (key,)):
                shown_path = key_path(path)
                problems.append(
                    Problem(
                        PREFIX + shown_path,
                        "[secret]",
                        f"must be set with `pulumi config set --secret --path {shown_path} ...`",
                    )
                )
    try:
        config = StackConfig.model_validate(decoded)
    except ValidationError as error:
        problems += problems_of(error)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def load_from_pulumi() -> StackConfig:
    """Read the running program's whole config (every key, so typos are caught) and validate it."""
    from pulumi import runtime
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    secret_keys = {key for key in raw if runtime.is_config_secret(key)}
    secret_keys.update(runtime.get_config_secret_keys_env())
    return load_stack_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}, secret_keys)
