"""The gateway's TOML config file: what Router(...) takes, plus the server's own settings.

Read with tomllib, checked whole before anything starts: a bad file gets one ConfigError naming the
file, the key and what was expected. Secrets are never written in the file: a model's ``api_key`` (and
the other secret parameters) must be ``"env:NAME"``, read from the environment at start; client keys
are ``"env:NAME"`` or ``"sha256:<hex>"`` and are kept only as SHA-256 digests.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..config import SECRET_PARAM_NAMES, ModelSpec, RewardWeights, RouterSettings
from ..errors import ConfigError

__all__ = ["GatewayConfig", "ServerSettings", "load_config", "parse_config"]

_MAX_CONFIG_BYTES = 1 << 20  # a config file is small: refuse to read a huge one into memory
_ROUTER_KEYS = frozenset({"store", "reward", "policy", "seed", "scorer", "hash_key"}) | frozenset(RouterSettings.model_fields)
_POLICIES = ("thompson", "linucb", "egreedy")
_OPENABLE_PATHS = ("/healthz", "/metrics", "/dashboard", "/v1/models", "/v1/router/state")
_SERVER_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 4000,
    "workers": 1,
    "client_keys": [],
    "open_paths": ["/healthz"],
    "max_body_bytes": 4 << 20,
    "shutdown_timeout_s": 30.0,
    "tasks": [],
    "pass_threshold": 0.5,
    "dashboard_cache_s": 2.0,
    "allow_remote_without_keys": False,
}


@dataclass(frozen=True)
class ServerSettings:
    """The ``[server]`` table (see the README's gateway section for each key)."""

    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    client_key_hashes: tuple[bytes, ...] = ()  # SHA-256 digests; the keys themselves are not kept
    open_paths: tuple[str, ...] = ("/healthz",)  # served without a client key even when keys are set
    max_body_bytes: int = 4 << 20
    shutdown_timeout_s: float = 30.0
    tasks: tuple[str, ...] = ()  # when set, the only tasks accepted (and listed by /v1/models)
    pass_threshold: float = 0.5  # quality at which a task counts as completed (dashboard, state)
    dashboard_cache_s: float = 2.0
    allow_remote_without_keys: bool = False

    @property
    def auth_required(self) -> bool:
        return bool(self.client_key_hashes)


@dataclass(frozen=True)
class GatewayConfig:
    """A checked config file: ``router_kwargs()`` builds the Router, ``server`` runs the gateway."""

    path: str
    models: tuple[ModelSpec, ...]
    reward: RewardWeights | None
    policy: str
    seed: int
    store: str = field(repr=False)  # a database URL may carry a password: see store_display
    settings: Mapping[str, Any] = field(default_factory=dict)
    scorer: Mapping[str, Any] | None = None
    hash_key: bytes | None = field(default=None, repr=False)
    server: ServerSettings = field(default_factory=ServerSettings)

    @property
    def store_display(self) -> str:
        """The store as it may be printed: a database URL's password masked."""
        parts = urlsplit(self.store)
        if parts.scheme and parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
        return self.store

    @property
    def store_is_shared(self) -> bool:
        """A store several processes can write at once (PostgreSQL), unlike a DuckDB file."""
        return self.store.startswith(("postgresql://", "postgres://"))

    def router_kwargs(self) -> dict[str, Any]:
        from .scoring import build_scorer

        return {
            "models": list(self.models),
            "reward": self.reward,
            "policy": self.policy,
            "store": self.store,
            "seed": self.seed,
            "scorer": build_scorer(self.scorer, self.path) if self.scorer else None,
            "hash_key": self.hash_key,
            **self.settings,
        }


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and check a gateway config file; ``environ`` (default os.environ) resolves ``"env:NAME"``."""
    where = str(path)
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the config file: {exc.strerror or exc}") from None
    if size > _MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: the config file is {size} bytes; at most {_MAX_CONFIG_BYTES} expected")
    try:
        data = tomllib.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    return parse_config(data, where, os.environ if environ is None else environ)


def parse_config(data: Mapping[str, Any], where: str, environ: Mapping[str, str]) -> GatewayConfig:
    _known(data, {"router", "models", "server"}, where, "")
    router = _table(data.get("router", {}), where, "router")
    _known(router, _ROUTER_KEYS, where, "router")
    models = _models(data.get("models"), where, environ)
    settings = {k: v for k, v in router.items() if k in RouterSettings.model_fields}
    try:
        RouterSettings(**settings)
    except ConfigError as exc:
        raise ConfigError(f"{where}: [router]: {_after_class(exc)}") from None
    policy = router.get("policy", "thompson")
    if policy not in _POLICIES:
        raise ConfigError(f"{where}: router.policy: expected one of {', '.join(_POLICIES)}, got {policy!r}")
    seed = router.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{where}: router.seed: expected an integer, got {seed!r}")
    store = router.get("store", ":memory:")
    if isinstance(store, str) and store.startswith("env:"):  # a database URL with a password in it
        store = _resolve(store, where, "router.store", environ)
    if not isinstance(store, str) or not store:
        raise ConfigError(f"{where}: router.store: expected a path, \":memory:\" or a postgresql:// URL, got {store!r}")
    hash_key = router.get("hash_key")
    return GatewayConfig(
        path=where,
        models=models,
        reward=_reward(router.get("reward"), where),
        policy=policy,
        seed=seed,
        store=store,
        settings=settings,
        scorer=_table(router["scorer"], where, "router.scorer") if "scorer" in router else None,
        hash_key=_resolve(hash_key, where, "router.hash_key", environ).encode() if hash_key is not None else None,
        server=_server(_table(data.get("server", {}), where, "server"), where, environ),
    )


def _after_class(exc: ConfigError) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith(("RouterSettings: ", "ModelSpec: ", "RewardWeights: ")) else text


def _table(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key}: expected a table, got {type(value).__name__}")
    return value


def _known(table: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str, section: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(sorted(allowed))}"
            name = f"{section}.{key}" if section else key
            raise ConfigError(f"{where}: {name}: unknown key{hint}")


def _resolve(value: Any, where: str, key: str, environ: Mapping[str, str]) -> str:
    """``"env:NAME"`` -> the variable's value (it must be set and non-empty)."""
    if not isinstance(value, str) or not value.startswith("env:"):
        raise ConfigError(f"{where}: {key}: expected \"env:NAME\" (secrets stay out of config files)")
    name = value[4:]
    if not name:
        raise ConfigError(f"{where}: {key}: expected \"env:NAME\" with a variable name")
    found = environ.get(name)
    if not found:
        raise ConfigError(f"{where}: {key}: the environment variable {name} is not set")
    return found


def _models(value: Any, where: str, environ: Mapping[str, str]) -> tuple[ModelSpec, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: models: expected one [[models]] table per model, at least one")
    specs: list[ModelSpec] = []
    for i, raw in enumerate(value):
        key = f"models[{i}]"
        table = dict(_table(raw, where, key))
        name = table.get("name")
        key = f"models[{i}] ({name})" if isinstance(name, str) else key
        for param, item in list(table.items()):
            if param in SECRET_PARAM_NAMES:
                table[param] = _resolve(item, where, f"{key}.{param}", environ)
            elif isinstance(item, str) and item.startswith("env:"):
                table[param] = _resolve(item, where, f"{key}.{param}", environ)
        try:
            spec = ModelSpec(**table)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {key}: {_after_class(exc)}") from None
        if spec.name in {s.name for s in specs}:
            raise ConfigError(f"{where}: {key}.name: {spec.name!r} is the name of an earlier model")
        specs.append(spec)
    return tuple(specs)


def _reward(value: Any, where: str) -> RewardWeights | None:
    if value is None:
        return None
    try:
        return RewardWeights(**_table(value, where, "router.reward"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: router.reward: {_after_class(exc)}") from None


def _key_hash(entry: Any, where: str, key: str, environ: Mapping[str, str]) -> bytes:
    if isinstance(entry, str) and entry.startswith("sha256:"):
        try:
            digest = bytes.fromhex(entry[7:])
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigError(f"{where}: {key}: expected \"sha256:\" and 64 hex digits")
        return digest
    secret = _resolve(entry, where, key, environ) if isinstance(entry, str) and entry.startswith("env:") else None
    if secret is None:
        raise ConfigError(f"{where}: {key}: expected \"env:NAME\" or \"sha256:<hex digest of the key>\" "
                          "(client keys are not written in config files)")
    return hashlib.sha256(secret.encode()).digest()


def _server(table: dict[str, Any], where: str, environ: Mapping[str, str]) -> ServerSettings:
    _known(table, set(_SERVER_DEFAULTS), where, "server")
    merged = {**_SERVER_DEFAULTS, **table}
    expect = {
        "host": str, "port": int, "workers": int, "client_keys": list, "open_paths": list, "max_body_bytes": int,
        "shutdown_timeout_s": (int, float), "tasks": list, "pass_threshold": (int, float),
        "dashboard_cache_s": (int, float), "allow_remote_without_keys": bool,
    }
    for key, kind in expect.items():
        value = merged[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{where}: server.{key}: expected {_kind_name(kind)}, got {value!r}")
    if not 0 <= merged["port"] <= 65535:
        raise ConfigError(f"{where}: server.port: expected 0-65535, got {merged['port']}")
    if merged["workers"] < 1:
        raise ConfigError(f"{where}: server.workers: expected at least 1, got {merged['workers']}")
    if merged["max_body_bytes"] < 1024:
        raise ConfigError(f"{where}: server.max_body_bytes: expected at least 1024, got {merged['max_body_bytes']}")
    if not merged["shutdown_timeout_s"] > 0:
        raise ConfigError(f"{where}: server.shutdown_timeout_s: expected a number > 0")
    if not 0 <= merged["pass_threshold"] <= 1:
        raise ConfigError(f"{where}: server.pass_threshold: expected a number in [0, 1]")
    for path in merged["open_paths"]:
        if path not in _OPENABLE_PATHS:
            raise ConfigError(f"{where}: server.open_paths: {path!r} is not one of {', '.join(_OPENABLE_PATHS)}")
    for task in merged["tasks"]:
        if not isinstance(task, str) or not task.strip() or len(task) > 200 or "/" in task:
            raise ConfigError(f"{where}: server.tasks: {task!r} is not a task name (1-200 characters, no '/')")
    hashes = tuple(_key_hash(k, where, f"server.client_keys[{i}]", environ) for i, k in enumerate(merged["client_keys"]))
    return ServerSettings(
        host=merged["host"], port=merged["port"], workers=merged["workers"], client_key_hashes=hashes,
        open_paths=tuple(merged["open_paths"]), max_body_bytes=merged["max_body_bytes"],
        shutdown_timeout_s=float(merged["shutdown_timeout_s"]), tasks=tuple(merged["tasks"]),
        pass_threshold=float(merged["pass_threshold"]), dashboard_cache_s=float(merged["dashboard_cache_s"]),
        allow_remote_without_keys=merged["allow_remote_without_keys"],
    )


def _kind_name(kind: Any) -> str:
    names = {str: "a string", int: "an integer", list: "an array", bool: "true or false"}
    return "a number" if isinstance(kind, tuple) else names[kind]


def check_exposure(host: str, settings: ServerSettings, where: str) -> None:
    """Without client keys the gateway answers anyone who reaches it: only on a loopback address,
    unless the operator says otherwise (allow_remote_without_keys)."""
    if settings.auth_required or settings.allow_remote_without_keys:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"{where}: server.client_keys: none are set, so the gateway would answer anyone on {host}; "
            "set client_keys, bind to 127.0.0.1, or set server.allow_remote_without_keys = true"
        )
