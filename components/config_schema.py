"""Declarative stack-config parsing: typed dataclasses in, every problem reported at once.

A config model is a tree of frozen dataclasses whose fields are declared with :func:`setting`. The
field's type annotation says what shape the value must have; ``check`` and ``choices`` say which
values are allowed. :func:`parse_stack_config` walks the tree, collects a :class:`Problem` for every
bad value (naming the key, the value and what is allowed) and raises one :class:`ConfigError` at the
end. The same metadata generates the README's configuration reference, so the two cannot drift.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")

Check = Callable[[Any], "str | None"]
"""Returns None when the value is allowed, else a description of what is allowed."""


class SecretStr:
    """A secret config value: never printed, only handed to Pulumi as a secret Output."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr([secret])"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Invalid:
    """Stands in for a value that failed validation, so cross-field checks can skip it."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def is_valid(*values: object) -> bool:
    """True when none of the values (nor anything nested in them) failed validation."""
    for value in values:
        if value is INVALID:
            return False
        if is_dataclass(value) and not isinstance(value, type):
            if not is_valid(*(getattr(value, f.name) for f in fields(value))):
                return False
        elif isinstance(value, list | tuple):
            if not is_valid(*typing.cast("list[object]", value)):
                return False
        elif isinstance(value, dict) and not is_valid(*typing.cast("dict[str, object]", value).values()):
            return False
    return True


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


@dataclass(frozen=True)
class SettingInfo:
    doc: str
    check: Check | None
    choices: tuple[str, ...] | None
    secret: bool


def setting(
    doc: str,
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    check: Check | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
) -> Any:
    """Declare one config setting: its documentation, default and allowed values."""
    metadata = {"setting": SettingInfo(doc=doc, check=check, choices=choices, secret=secret)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def config_key(field_name: str) -> str:
    """Python field name -> Pulumi config key (snake_case -> camelCase)."""
    head, *rest = field_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def setting_info(f: Field[Any]) -> SettingInfo:
    info = f.metadata.get("setting")
    if not isinstance(info, SettingInfo):
        raise TypeError(f"field {f.name} is not declared with setting()")
    return info


def has_default(f: Field[Any]) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def default_of(f: Field[Any]) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def describe_type(tp: Any) -> str:
    optional, inner = _is_optional(tp)
    if optional:
        return describe_type(inner)
    origin = get_origin(tp)
    if origin is list:
        return f"list of {describe_type(get_args(tp)[0])}"
    if origin is dict:
        return f"map of string to {describe_type(get_args(tp)[1])}"
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(tp))
    if tp is SecretStr:
        return "string (secret)"
    if is_dataclass(tp):
        return "object"
    return {str: "string", int: "integer", bool: "boolean", Any: "object"}.get(tp, str(tp))


def show(value: Any) -> str:
    """Render a bad value for an error message (JSON, so strings are quoted and types visible)."""
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class _Parser:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.problems: list[Problem] = []

    def problem(self, path: str, value: str, allowed: str) -> None:
        self.problems.append(Problem(f"{self.prefix}{path}", value, allowed))

    def parse(self, tp: Any, raw: Any, path: str, secret: bool) -> Any:
        shown = "[secret]" if secret else show(raw)
        optional, inner = _is_optional(tp)
        if raw is None:
            if optional:
                return None
            self.problem(path, shown, f"must be set (a {describe_type(tp)})")
            return INVALID
        tp = inner
        origin = get_origin(tp)
        if is_dataclass(tp):
            if not isinstance(raw, dict):
                self.problem(path, shown, f"must be an object with keys {_keys_of(tp)}")
                return INVALID
            return self.parse_object(typing.cast("type[Any]", tp), typing.cast("dict[str, Any]", raw), path)
        if origin is list:
            if not isinstance(raw, list):
                self.problem(path, shown, f"must be a {describe_type(tp)}")
                return INVALID
            item_type = get_args(tp)[0]
            items = typing.cast("list[Any]", raw)
            return [self.parse(item_type, item, f"{path}[{i}]", secret) for i, item in enumerate(items)]
        if origin is dict:
            if not isinstance(raw, dict):
                self.problem(path, shown, f"must be a {describe_type(tp)}")
                return INVALID
            value_type = get_args(tp)[1]
            mapping = typing.cast("dict[Any, Any]", raw)
            return {str(k): self.parse(value_type, v, f"{path}.{k}", secret) for k, v in mapping.items()}
        if tp is SecretStr:
            if not isinstance(raw, str):
                self.problem(path, shown, "must be a string")
                return INVALID
            return SecretStr(raw)
        if tp is bool:
            if not isinstance(raw, bool):
                self.problem(path, shown, "must be true or false")
                return INVALID
            return raw
        if tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                self.problem(path, shown, "must be an integer")
                return INVALID
            return raw
        if tp is str:
            if not isinstance(raw, str):
                self.problem(path, shown, "must be a string")
                return INVALID
            return raw
        if tp is Any:
            return raw
        raise TypeError(f"unsupported config type {tp!r} at {path}")

    def parse_object(self, cls: type[T], raw: Mapping[str, Any], path: str) -> T:
        hints = _type_hints(cls)
        known = {config_key(f.name): f for f in fields(typing.cast(Any, cls))}
        for key in raw:
            if key not in known:
                self.problem(_join(path, key), show(raw[key]), f"unknown key; allowed keys here: {', '.join(known)}")
        values: dict[str, Any] = {}
        for key, f in known.items():
            values[f.name] = self.parse_field(f, hints[f.name], raw, key, _join(path, key))
        obj = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(obj, name, value)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            for sub_path, value, allowed in typing.cast("Iterator[tuple[str, str, str]]", validate()):
                self.problem(_join(path, sub_path), value, allowed)
        return obj

    def parse_field(self, f: Field[Any], tp: Any, raw: Mapping[str, Any], key: str, path: str) -> Any:
        info = setting_info(f)
        if key not in raw:
            if has_default(f):
                return default_of(f)
            self.problem(path, "(not set)", f"required: {info.doc}")
            return INVALID
        value = self.parse(tp, raw[key], path, info.secret)
        if value is INVALID or value is None:
            return value
        shown = "[secret]" if info.secret else show(raw[key])
        if info.choices is not None and value not in info.choices:
            self.problem(path, shown, f"must be one of {', '.join(json.dumps(c) for c in info.choices)}")
            return INVALID
        if info.check is not None:
            allowed = info.check(value)
            if allowed is not None:
                self.problem(path, shown, allowed)
                return INVALID
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _keys_of(cls: Any) -> str:
    return ", ".join(config_key(f.name) for f in fields(cls))


def parse_stack_config(
    cls: type[T],
    project: str,
    raw_config: Mapping[str, str],
    secret_keys: set[str],
) -> T:
    """Parse Pulumi's flat config map (``project:key`` -> string) into ``cls``.

    Top-level Pulumi config values arrive as strings; structured ones (objects, lists, numbers,
    booleans) arrive JSON-encoded, exactly as the Pulumi CLI passes them to the program.
    """
    parser = _Parser(prefix=f"{project}:")
    hints = _type_hints(cls)
    prefix = f"{project}:"
    decoded: dict[str, Any] = {}
    fields_by_key = {config_key(f.name): f for f in fields(typing.cast(Any, cls))}
    for full_key, text in sorted(raw_config.items()):
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        f = fields_by_key.get(key)
        if f is None:
            parser.problem(key, "[not shown]", f"unknown key; allowed keys: {', '.join(sorted(fields_by_key))}")
            continue
        info = setting_info(f)
        if info.secret and full_key not in secret_keys:
            parser.problem(key, "[secret]", f"must be set with `pulumi config set --secret {key} ...`")
        _, inner = _is_optional(hints[f.name])
        if inner in (str, SecretStr):
            decoded[key] = text
            continue
        try:
            decoded[key] = json.loads(text)
        except json.JSONDecodeError:
            parser.problem(
                key,
                "[secret]" if info.secret else show(text),
                f"must be a {describe_type(hints[f.name])} (structured YAML in the stack file)",
            )
    result = parser.parse_object(cls, decoded, "")
    if parser.problems:
        raise ConfigError(parser.problems)
    return result


@dataclass(frozen=True)
class ReferenceRow:
    key: str
    type: str
    default: str
    doc: str


def reference_rows(cls: type, prefix: str = "") -> list[ReferenceRow]:
    """Flatten a config model into documentation rows (used to generate the README table)."""
    rows: list[ReferenceRow] = []
    hints = _type_hints(cls)
    for f in fields(typing.cast(Any, cls)):
        info = setting_info(f)
        key = _join(prefix, config_key(f.name))
        tp = hints[f.name]
        _, inner = _is_optional(tp)
        doc = info.doc
        if info.choices:
            doc += f" One of: {', '.join(f'`{c}`' for c in info.choices)}."
        if info.secret:
            doc += " Set with `pulumi config set --secret`."
        if is_dataclass(inner):
            default = _default_text(f) if has_default(f) else "(required)"
            rows.append(ReferenceRow(key, "object", default if len(default) <= 110 else "(fields below)", doc))
            rows.extend(reference_rows(typing.cast(type, inner), key))
            continue
        item = get_args(inner)[0] if get_origin(inner) is list else None
        if item is not None and is_dataclass(item):
            rows.append(ReferenceRow(key, "list of objects", _default_text(f), doc))
            rows.extend(reference_rows(typing.cast(type, item), f"{key}[]"))
            continue
        rows.append(ReferenceRow(key, describe_type(tp), _default_text(f), doc))
    return rows


def _default_text(f: Field[Any]) -> str:
    if not has_default(f):
        return "(required)"
    value = default_of(f)
    if value is None:
        return "(unset)"
    return json.dumps(_plain(value), sort_keys=True)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {config_key(f.name): _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in typing.cast("list[Any]", value)]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in typing.cast("dict[str, Any]", value).items()}
    return value
