"""Evaluate the Pulumi program in-process with the Pulumi mock engine, and record what it registers.

Used by the tests, the offline renderer and the benchmark. Compared with ``pulumi.runtime.MockMonitor``
this engine:

* records every registration with its resource options (protect, ignoreChanges, retainOnDelete,
  replaceOnChanges, deleteBeforeReplace, additionalSecretOutputs, parent, dependencies);
* keeps the secretness of every input value at its exact position (the stock monitor pushes it up
  to the enclosing object), as :class:`Secret` markers;
* applies ``additionalSecretOutputs`` to the outputs it returns, as the real engine does, so values
  derived from e.g. ``RandomPassword.result`` are secrets in the program exactly as in a real run;
* returns distinct, deterministic sentinel values for generated secrets (pulumi-random), so a test
  can search rendered objects for them;
* captures the stack outputs, with their secretness.

It is also cheaper than the stock monitor, because the tests evaluate the program hundreds of times:
a resource whose outputs are its inputs gets its request's properties back as they came (the stock
monitor deserializes and re-serializes them to the same value), the SDK's monitor calls run inline
instead of on a thread pool, and the SDK's source-position stack traces, which only the real engine's
diagnostics show, are not collected.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import Stack, run_pulumi_func
from pulumi.runtime.sync_await import _sync_await  # pyright: ignore[reportPrivateUsage]

PROJECT = "airflow-k8s"
ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
_SECRET_SIG = rpc._special_secret_sig  # pyright: ignore[reportPrivateUsage]
_SIG_KEY = rpc._special_sig_key  # pyright: ignore[reportPrivateUsage]
_UNKNOWN = rpc.UNKNOWN


@dataclass(frozen=True)
class Secret:
    """An input value the program marked secret, at the exact position it was marked."""

    value: Any


class Unknown:
    """An input value unknown during evaluation (cannot happen outside preview)."""

    def __repr__(self) -> str:
        return "<unknown>"


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    protect: bool
    ignore_changes: list[str]
    retain_on_delete: bool
    delete_before_replace: bool
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    dependencies: list[str]
    provider: str
    aliases: list[str] = field(default_factory=lambda: [])
    """The alias specs' types (or URNs) the resource declared."""
    outputs: dict[str, Any] = field(default_factory=lambda: {})
    """What the mock returned (for generated values: the sentinel secrets)."""


@dataclass
class Evaluation:
    stack: str
    registrations: list[Registration]
    outputs: dict[str, Any]
    error: BaseException | None = None
    log: list[str] = field(default_factory=lambda: [])

    def custom(self) -> list[Registration]:
        return [r for r in self.registrations if r.custom]

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_token]

    def kubernetes_objects(self) -> list[dict[str, Any]]:
        """Every Kubernetes object the program registers, as a manifest (secrets still marked)."""
        return [
            {k: v for k, v in r.inputs.items() if not k.startswith("__")}
            for r in self.registrations
            if r.custom and r.type.startswith("kubernetes:") and not r.type.startswith("pulumi:providers:")
        ]

    def find(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.kubernetes_objects():
            if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
                return obj
        raise KeyError(f"no {kind} named {name!r} (have: {sorted(self.names_of(kind))})")

    def names_of(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.kubernetes_objects() if o.get("kind") == kind and "metadata" in o}

    def registration_for(self, kind: str, name: str) -> Registration:
        for r in self.registrations:
            if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name:
                return r
        raise KeyError(f"no registration of {kind} {name!r}")


def decode(value: Any) -> Any:
    """A protobuf Struct value -> Python, keeping secret markers in place and integers as int."""
    if isinstance(value, struct_pb2.Struct):
        if _SIG_KEY in value:
            if value[_SIG_KEY] == _SECRET_SIG:
                return Secret(decode(value["value"]))
            raise ValueError(f"unexpected special value {value[_SIG_KEY]!r}")
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [decode(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return Unknown()
    return value


def reveal(value: Any) -> Any:
    """Strip the secret markers (to read values in tests)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, bool]]:
    """Yield (path, leaf, is_secret) for every leaf."""
    yield from _walk(value, path, False)


def _walk(value: Any, path: str, secret: bool) -> Iterator[tuple[str, Any, bool]]:
    if isinstance(value, Secret):
        yield from _walk(value.value, path, True)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else k, secret)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]", secret)
    else:
        yield path, value, secret


def sentinel(resource_name: str, purpose: str, length: int) -> str:
    """A deterministic, distinct, alphanumeric stand-in for a generated secret."""
    digest = hashlib.sha256(f"{resource_name}/{purpose}".encode()).hexdigest()
    text = ("sntl" + digest) * (length // 68 + 1)
    return text[:length]


def _sentinel_bytes(resource_name: str, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{resource_name}/{counter}".encode()).digest()
        counter += 1
    return out[:length]


class SentinelMocks(pulumi_mocks.Mocks):
    """Outputs = inputs, plus deterministic values for what pulumi-random would generate."""

    GENERATING = frozenset(
        {
            "random:index/randomPassword:RandomPassword",
            "random:index/randomString:RandomString",
            "random:index/randomBytes:RandomBytes",
        }
    )
    """The types whose outputs are more than their inputs; every other type's outputs are its inputs."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        # Like pulumi-random, a change of keepers yields a new value.
        seed = args.name + (json.dumps(args.inputs["keepers"], sort_keys=True) if args.inputs.get("keepers") else "")
        if args.typ in ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString"):
            outputs["result"] = sentinel(seed, "result", int(args.inputs.get("length", 16)))
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = _sentinel_bytes(seed, int(args.inputs["length"]))
            outputs["base64"] = base64.b64encode(raw).decode()
            outputs["hex"] = raw.hex()
        return f"{args.name}_id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        registration = Registration(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent,
            custom=bool(request.custom),
            inputs=decode(request.object),
            protect=bool(request.protect),
            ignore_changes=list(request.ignoreChanges),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
            replace_on_changes=list(request.replaceOnChanges),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            dependencies=sorted(request.dependencies),
            provider=request.provider,
            aliases=[_alias(alias) for alias in request.aliases],
        )
        self.registrations.append(registration)
        if request.type in SentinelMocks.GENERATING:
            response = super().RegisterResource(request)
            registration.outputs = dict(self.resources[urn].state)
        else:
            # Outputs = inputs: the request's properties go back as they came, which is what the stock
            # monitor's deserialize, new_resource, serialize round trip returns, for a third of the cost.
            resource_id = f"{request.name}_id"
            response = resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=request.object)
            self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, registration.inputs)
            registration.outputs = registration.inputs
        secret_outputs = set(request.additionalSecretOutputs)
        if secret_outputs:
            for key in list(response.object.keys()):
                if key in secret_outputs:
                    wrapped = struct_pb2.Struct()
                    wrapped[_SIG_KEY] = _SECRET_SIG
                    wrapped["value"] = response.object[key]
                    response.object[key] = wrapped
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn.endswith(f"::pulumi:pulumi:Stack::{PROJECT}-{settings.get_stack()}"):
            self.stack_outputs = decode(request.outputs)
        return super().RegisterResourceOutputs(request)


def _alias(alias: Any) -> str:
    if alias.HasField("spec"):
        return str(alias.spec.type or alias.spec.name)
    return str(alias.urn)


class _InlineExecutorLoop(asyncio.SelectorEventLoop):
    """An event loop that runs the SDK's monitor calls (``run_in_executor``) at once, on this thread.

    The mock monitor answers from memory; a thread-pool hop per call only adds a wake-up of the loop.
    """

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self.create_future()
        try:
            future.set_result(func(*args))
        except Exception as exc:  # delivered to the awaiting SDK code, as the executor would
            future.set_exception(exc)
        return future


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


def _use_inline_loop() -> None:
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if not isinstance(loop, _InlineExecutorLoop) or loop.is_closed():
        asyncio.set_event_loop(_InlineExecutorLoop())


def run_program() -> None:
    runpy.run_path(str(PROGRAM), run_name="__main__")


def evaluate(
    config: Mapping[str, str],
    secret_keys: set[str] | frozenset[str] = frozenset(),
    stack: str = "dev",
    program: Callable[[], None] = run_program,
) -> Evaluation:
    """Run the program once under the mock engine with the given flat Pulumi config."""
    _use_inline_loop()
    # Source positions go to the real engine's diagnostics only; walking the stack costs ~5% per resource.
    sdk_resource._get_stack_trace = _no_stack_trace  # pyright: ignore[reportPrivateUsage]
    mocks = SentinelMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_all_config(dict(config), sorted(secret_keys))
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    settings.ROOT.set(None)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    error: BaseException | None = None
    # The cyclic collector would walk every object alive (the SDKs' classes, cached evaluations) many
    # times per run while the SDK allocates futures by the thousand: up to half the run's time. Its
    # cycles are collected once the run is over, when the collector is back on.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _sync_await(run_pulumi_func(lambda: Stack(program) and None))
    except Exception as exc:  # the program's own error, returned to the caller to assert on
        error = exc
    finally:
        if collecting:
            gc.enable()
    return Evaluation(stack=stack, registrations=monitor.registrations, outputs=monitor.stack_outputs, error=error)


# --- stack config files ----------------------------------------------------------------------------


def _secure_placeholder(key: str, path: str) -> str:
    """What an encrypted config value becomes offline (ciphertext cannot be read without the stack)."""
    if key == f"{PROJECT}:externalDatabaseUrl":
        return f"postgresql+psycopg2://airflow:{sentinel(key, 'password', 24)}@external-db.example.com:5432/airflow"
    return sentinel(key, path, 32)


def _replace_secure(value: Any, key: str, path: str) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return _secure_placeholder(key, path), True
        found = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k], secret = _replace_secure(v, key, f"{path}.{k}")
            found = found or secret
        return out, found
    if isinstance(value, list):
        items = [_replace_secure(v, key, f"{path}[{i}]") for i, v in enumerate(value)]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, str], set[str]]:
    """Read Pulumi.<stack>.yaml into the flat string map the CLI hands a program (plus secret keys).

    ``overrides`` maps short keys (``scheduler``) to values that replace the file's.
    """
    # libyaml's loader when PyYAML has it: the same documents, parsed for every evaluation
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load((ROOT / f"Pulumi.{stack}.yaml").read_text(), Loader=loader) or {}
    raw: dict[str, Any] = dict(data.get("config") or {})
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in raw.items():
        plain, secret = _replace_secure(value, key, "")
        if secret:
            secret_keys.add(key)
        config[key] = plain if isinstance(plain, str) else yaml_scalar_or_json(plain)
    return config, secret_keys


def yaml_scalar_or_json(value: Any) -> str:
    return json.dumps(value)


def evaluate_stack(
    stack: str, overrides: Mapping[str, Any] | None = None, secret_overrides: Mapping[str, Any] | None = None
) -> Evaluation:
    config, secret_keys = stack_config(stack, overrides)
    for key, value in (secret_overrides or {}).items():
        full = f"{PROJECT}:{key}"
        config[full] = value if isinstance(value, str) else yaml_scalar_or_json(value)
        secret_keys.add(full)
    return evaluate(config, secret_keys, stack=stack)
