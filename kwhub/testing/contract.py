"""Checks every adapter passes, whatever its family: the adapter contract of ``kwhub.core.adapters``.

* :func:`check_adapter_contract` looks at the class: family and base class, ``type_id``
  (``<family>.<name>``), ``capabilities`` and the methods they promise, a ``Config`` that
  refuses unknown keys and reads ``SecretStr`` fields from ``"env:NAME"`` without showing
  them, and ``describe()``. It returns an instance built from the given configuration.
* :func:`check_reports_ok` and :func:`check_reports_failure` run ``check()`` against a
  reachable and an unreachable or misconfigured target: ``check()`` must answer with a
  :class:`~kwhub.core.adapters.CheckResult` (never raise) and classify a failure with the
  :class:`~kwhub.core.adapters.FailureKind` that says what to do about it.
* :func:`check_registers` says that a loaded plugin registered exactly the given types.

Every check raises :class:`AssertionError` with a message that names the adapter type and
what to change; it does not rely on ``assert`` statements, so it also works under
``python -O`` and outside pytest.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from typing import Any, cast

from pydantic import SecretStr, ValidationError

from kwhub.core.adapters import (
    FAMILIES,
    Adapter,
    AdapterConfig,
    CheckResult,
    FailureKind,
    InvoiceRenderer,
    InvoiceTransport,
    MeterAdapter,
)

UNKNOWN_KEY = "kwhub_kit_unknown_key"
SECRET_ENV = "KWHUB_KIT_SECRET"
SECRET_VALUE = "kit-secret-7f3a9c"
DESCRIBE_KEYS = {"type", "family", "title", "capabilities"}

# capabilities whose meaning kwhub defines, per kind of adapter
METER_CAPABILITIES = frozenset({"file", "poll", "stream"})
RENDERER_CAPABILITIES = frozenset({"render", "validate"})
TRANSPORT_CAPABILITIES = frozenset({"deliver"})
POLLED_MEMBERS = ("name", "poll_seconds", "timeout", "interval_minutes", "channel_points", "read", "close")


def require(condition: object, message: str) -> None:
    """Raise :class:`AssertionError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def _overrides(cls: type, base: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(base, name, None)


def _family_base(cls: type[Adapter]) -> type[Adapter]:
    if cls.family == "erp":
        for base in (InvoiceRenderer, InvoiceTransport):
            if issubclass(cls, base):
                return cast("type[Adapter]", base)
        raise AssertionError(f"{cls.__name__}: an erp adapter subclasses InvoiceRenderer or InvoiceTransport")
    return cast("type[Adapter]", FAMILIES[cls.family])


def check_adapter_contract(cls: type[Adapter], config: Mapping[str, Any] | None = None) -> Adapter:
    """Check the adapter class against the contract and return an instance built from ``config``.

    ``config`` is a valid ``[adapters.config]`` table for this type (``{}`` when every key
    has a default).
    """
    require(isinstance(cls, type) and issubclass(cls, Adapter),
            f"{cls!r} is not a subclass of kwhub.core.adapters.Adapter")
    name = cls.__name__
    require(cls.family in FAMILIES,
            f"{name}: family {cls.family!r} is not one of {sorted(FAMILIES)}; subclass a family base "
            "(MeterAdapter, MarketAdapter, InvoiceRenderer, InvoiceTransport, EsgReporter)")
    base = _family_base(cls)
    require(issubclass(cls, base), f"{name}: a {cls.family} adapter subclasses {base.__name__}")
    pattern = rf"{re.escape(cls.family)}\.[a-z0-9][a-z0-9_]*"
    require(isinstance(cls.type_id, str) and re.fullmatch(pattern, cls.type_id),
            f"{name}: type_id {cls.type_id!r} should be '{cls.family}.<name>' (lower case, digits, '_')")
    tid = cls.type_id
    _check_capabilities(cls, base)
    require(isinstance(cls.Config, type) and issubclass(cls.Config, AdapterConfig),
            f"{tid}: Config must subclass kwhub.core.adapters.AdapterConfig (unknown keys refused, env secrets)")
    valid = dict(config or {})
    try:
        cls.Config.model_validate(valid)
    except ValidationError as exc:
        raise AssertionError(f"{tid}: the configuration given to the check does not validate: {exc}") from None
    _check_unknown_key_refused(cls, valid)
    _check_secrets(cls, valid)
    instance = cls(f"kit_{tid.split('.', 1)[1]}", valid)
    _check_describe(cls)
    return instance


def _check_capabilities(cls: type[Adapter], base: type[Adapter]) -> None:
    tid = cls.type_id
    caps = cls.capabilities
    require(isinstance(caps, frozenset) and all(isinstance(c, str) and c for c in caps),
            f"{tid}: capabilities must be a frozenset of non-empty strings, got {caps!r}")
    if base is MeterAdapter:
        require(caps and caps <= METER_CAPABILITIES,
                f"{tid}: a meter adapter declares some of {sorted(METER_CAPABILITIES)}, got {sorted(caps)}")
        if "file" in caps:
            require(_overrides(cls, MeterAdapter, "read_file"),
                    f"{tid}: declares 'file' but does not implement read_file(path, channel=None)")
        if "poll" in caps:
            missing = [m for m in POLLED_MEMBERS if not hasattr(cls, m)]
            require(not missing, f"{tid}: declares 'poll' but lacks {', '.join(missing)} "
                                 "(subclass kwhub.hub.helpers.modbus.ModbusDeviceAdapter or implement them)")
    elif base is InvoiceRenderer:
        require("render" in caps and caps <= RENDERER_CAPABILITIES,
                f"{tid}: a renderer declares 'render' (and 'validate'), got {sorted(caps)}")
        require(_overrides(cls, InvoiceRenderer, "render"), f"{tid}: does not implement render(invoice, context)")
        if "validate" in caps:
            require(_overrides(cls, InvoiceRenderer, "validate"),
                    f"{tid}: declares 'validate' but does not implement validate(data)")
    elif base is InvoiceTransport:
        require(caps == TRANSPORT_CAPABILITIES, f"{tid}: a transport declares exactly ['deliver'], got {sorted(caps)}")
        require(_overrides(cls, InvoiceTransport, "send"), f"{tid}: does not implement send(doc)")


def _check_unknown_key_refused(cls: type[Adapter], valid: dict[str, Any]) -> None:
    tid = cls.type_id
    try:
        cls.Config.model_validate({**valid, UNKNOWN_KEY: 1})
    except ValidationError as exc:
        hits = [e for e in exc.errors() if e["type"] == "extra_forbidden" and tuple(e["loc"]) == (UNKNOWN_KEY,)]
        require(hits, f"{tid}: an unknown key failed for another reason than extra='forbid': {exc}")
        return
    raise AssertionError(f"{tid}: Config accepted the unknown key {UNKNOWN_KEY!r}; keep AdapterConfig's "
                         "model_config (extra='forbid') so a misspelled setting is an error")


@contextmanager
def _env(name: str, value: str | None) -> Any:
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def secret_fields(config_cls: type[AdapterConfig]) -> list[str]:
    """Names of the ``SecretStr`` (or ``SecretStr | None``) fields of a Config."""
    out = []
    for name, info in config_cls.model_fields.items():
        ann = info.annotation
        if ann is SecretStr or SecretStr in getattr(ann, "__args__", ()):
            out.append(name)
    return out


def _check_secrets(cls: type[Adapter], valid: dict[str, Any]) -> None:
    tid = cls.type_id
    for name in secret_fields(cls.Config):
        data = {**valid, name: f"env:{SECRET_ENV}"}
        with _env(SECRET_ENV, SECRET_VALUE):
            try:
                cfg = cls.Config.model_validate(data)
            except ValidationError as exc:
                raise AssertionError(f"{tid}: {name} = 'env:{SECRET_ENV}' did not validate: {exc}") from None
            value = getattr(cfg, name)
            require(isinstance(value, SecretStr) and value.get_secret_value() == SECRET_VALUE,
                    f"{tid}: {name} = 'env:{SECRET_ENV}' should read the environment variable")
            shown = repr(cfg) + str(cfg) + json.dumps(cls.describe(), default=str)
            require(SECRET_VALUE not in shown, f"{tid}: the value of secret {name} shows in the config's repr")
        with _env(SECRET_ENV, None):
            try:
                cls.Config.model_validate(data)
            except ValidationError as exc:
                require(SECRET_ENV in str(exc), f"{tid}: an unset {SECRET_ENV} should be named in the error: {exc}")
            else:
                raise AssertionError(f"{tid}: {name} = 'env:{SECRET_ENV}' validated although it is not set")


def _check_describe(cls: type[Adapter]) -> None:
    tid = cls.type_id
    d = cls.describe()
    require(isinstance(d, dict) and DESCRIBE_KEYS <= set(d),
            f"{tid}: describe() must return a dict with {sorted(DESCRIBE_KEYS)}, got {d!r}")
    require(d["type"] == tid and d["family"] == cls.family,
            f"{tid}: describe() names type {d['type']!r} / family {d['family']!r}")
    require(isinstance(d["title"], str) and d["title"].strip(),
            f"{tid}: describe() has no title; set title or give the class a docstring")
    require(d["capabilities"] == sorted(cls.capabilities), f"{tid}: describe() capabilities differ from the class")
    try:
        json.dumps(d)
    except TypeError as exc:
        raise AssertionError(f"{tid}: describe() is not JSON-serialisable: {exc}") from None


def _run_check(adapter: Adapter) -> CheckResult:
    tid = adapter.type_id
    try:
        result = adapter.check()
    except Exception as exc:
        raise AssertionError(f"{tid}: check() raised {type(exc).__name__}: {exc}; it should return "
                             "CheckResult.failure(kind, message) instead") from exc
    require(isinstance(result, CheckResult), f"{tid}: check() returned {result!r}, not a CheckResult")
    return result


def check_reports_ok(adapter: Adapter) -> CheckResult:
    """``check()`` against a reachable, correctly configured target succeeds."""
    result = _run_check(adapter)
    require(result.ok and result.kind is None,
            f"{adapter.type_id}: check() failed against a working target: {result.kind} {result.message}")
    return result


def check_reports_failure(adapter: Adapter, kind: FailureKind) -> CheckResult:
    """``check()`` against a broken target fails with ``kind`` and says why."""
    result = _run_check(adapter)
    tid = adapter.type_id
    require(not result.ok, f"{tid}: check() reported ok against a target that cannot work: {result.message}")
    require(isinstance(result.kind, FailureKind),
            f"{tid}: a failed check() needs a FailureKind (configuration, transient, system), got {result.kind!r}")
    got = result.kind.value if result.kind is not None else None
    require(result.kind == kind, f"{tid}: check() classified the failure as {got}, expected "
                                 f"{kind.value} ({result.message})")
    require(isinstance(result.message, str) and result.message.strip(),
            f"{tid}: a failed check() must say what is wrong (empty message)")
    return result


def check_registers(registry: Any, plugin: str, type_ids: Iterable[str]) -> None:
    """The loaded plugin ``plugin`` registered exactly ``type_ids`` and reported no error."""
    info = registry.plugins.get(plugin)
    require(info is not None, f"plugin {plugin!r} is not loaded (loaded: {', '.join(sorted(registry.plugins))})")
    require(not info.error, f"plugin {plugin!r} failed to load: {info.error}")
    want = sorted(type_ids)
    require(info.adapters == want, f"plugin {plugin!r} registers {info.adapters}, expected {want}")
