"""The app's configuration: a JSON file, overridden key by key with CDK context (``-c key=value``).

Sources, later ones win:

1. ``cdk_app/config.json`` (committed; an example), or the file named by ``-c config=path/to.json``;
2. context values: ``-c connections=crm-eu:eu,books-us:us``, ``-c alarm_email=ops@example.com``, and
   any other key of :class:`AppConfig` (``-c sample_consumer=true``, ``-c reserved_concurrency=none``…).

Config file (every key but ``connections`` optional)::

    {
      "connections": [
        {"name": "crm-eu", "dc": "eu", "health_probe_path": "/crm/v8/users?type=CurrentUser"},
        {"name": "books-us", "dc": "us"}
      ],
      "alarm_email": "oncall@example.com",
      "secret_prefix": "zoho/",
      "service_name": "zoho-token-sync",
      "stack_name": "ZohoTokenSync",
      "schedule_minutes": 10,
      "refresh_margin_seconds": 900,
      "reserved_concurrency": 1,
      "log_retention_days": 365,
      "sample_consumer": false,
      "sample_consumer_connection": "crm-eu",
      "operator_roles": ["zoho-operators"]
    }

``operator_roles`` (IAM role names or ARNs in the deployment's account) get exactly what the
``zoho-token`` CLI needs (``grant_operate`` and ``grant_list_connections``), as a policy this stack
attaches to them.

This module does not import aws-cdk-lib: configuration errors surface before the jsii runtime starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from cdk_app.connections import ConfigurationError, Connection, check_unique, parse_connections

DEFAULT_CONFIG_FILE: Final = Path(__file__).with_name("config.json")
_ROLE: Final = re.compile(r"(arn:aws[a-z-]*:iam::\d{12}:role/([\w+=,.@-]+/)*)?[\w+=,.@-]{1,64}")
#: Log retention periods CloudWatch Logs offers (days) that make sense for an audit trail.
RETENTION_DAYS: Final = (
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


@dataclass(frozen=True)
class AppConfig:
    """What ``cdk_app.app`` deploys. See the module docstring for the file format."""

    connections: tuple[Connection, ...]
    alarm_email: str | None = None
    secret_prefix: str = "zoho/"  # noqa: S105 - a name prefix, not a secret
    service_name: str = "zoho-token-sync"
    stack_name: str = "ZohoTokenSync"
    schedule_minutes: int = 10
    refresh_margin_seconds: int = 900
    reserved_concurrency: int | None = 1
    log_retention_days: int = 365
    sample_consumer: bool = False
    sample_consumer_connection: str | None = None
    operator_roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.connections:
            raise ConfigurationError("no connections configured: set connections (NAME:DC[,NAME:DC…])")
        check_unique(self.connections)
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", self.stack_name):
            raise ConfigurationError(
                f"stack_name {self.stack_name!r} is not a valid CloudFormation stack name"
            )
        if self.log_retention_days not in RETENTION_DAYS:
            raise ConfigurationError(
                f"log_retention_days {self.log_retention_days} is not a CloudWatch Logs retention; "
                f"use one of {', '.join(map(str, RETENTION_DAYS))}"
            )
        for role in self.operator_roles:
            if not _ROLE.fullmatch(role):
                raise ConfigurationError(
                    f"operator_roles: {role!r} is neither an IAM role name nor a role ARN "
                    "(arn:aws:iam::123456789012:role/name)"
                )
        chosen = self.sample_consumer_connection
        if chosen is not None and chosen not in {c.name for c in self.connections}:
            raise ConfigurationError(f"sample_consumer_connection {chosen!r} is not one of the connections")

    @property
    def consumer_connection(self) -> str:
        """The connection the sample consumer reads (default: the first one)."""
        return self.sample_consumer_connection or self.connections[0].name


def _as_bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigurationError(f"{key} must be true or false, got {value!r}")


def _as_int(key: str, value: object) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{key} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ConfigurationError(f"{key} must be a whole number, got {value!r}")


def _as_optional_int(key: str, value: object) -> int | None:
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "off", "")):
        return None
    return _as_int(key, value)


def _as_optional_str(key: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise ConfigurationError(f"{key} must be a string, got {value!r}")


def _as_str(key: str, value: object) -> str:
    if isinstance(value, str) and value:
        return value
    raise ConfigurationError(f"{key} must be a non-empty string, got {value!r}")


def _as_names(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigurationError(f"{key} must be a list of strings or a comma-separated string, got {value!r}")


def _as_connections(key: str, value: object) -> tuple[Connection, ...]:
    if isinstance(value, str):
        return parse_connections(value)
    if not isinstance(value, list):
        raise ConfigurationError(
            f"{key} must be a list of {{'name': ..., 'dc': ...}} objects or a 'NAME:DC,NAME:DC' string"
        )
    connections: list[Connection] = []
    for item in value:
        if not isinstance(item, dict):
            raise ConfigurationError(f"each connection must be an object with name and dc, got {item!r}")
        unknown = set(item) - {"name", "dc", "health_probe_path"}
        if unknown:
            raise ConfigurationError(
                f"connection {item.get('name')!r}: unknown key(s) {', '.join(sorted(unknown))}"
            )
        if "name" not in item or "dc" not in item:
            raise ConfigurationError(f"connection {item!r} needs both 'name' and 'dc'")
        connections.append(Connection(item["name"], item["dc"], item.get("health_probe_path")))
    return tuple(connections)


_PARSERS: Final[Mapping[str, Callable[[str, object], Any]]] = {
    "connections": _as_connections,
    "alarm_email": _as_optional_str,
    "secret_prefix": _as_str,
    "service_name": _as_str,
    "stack_name": _as_str,
    "schedule_minutes": _as_int,
    "refresh_margin_seconds": _as_int,
    "reserved_concurrency": _as_optional_int,
    "log_retention_days": _as_int,
    "sample_consumer": _as_bool,
    "sample_consumer_connection": _as_optional_str,
    "operator_roles": _as_names,
}
assert set(_PARSERS) == {f.name for f in fields(AppConfig)}  # noqa: S101 - import-time consistency check


def read_config_file(path: Path) -> dict[str, object]:
    """The raw mapping of a JSON config file, with a clear error for a missing or broken file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} not found") from None
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {path} must hold a JSON object")
    return data


def load_config(context: Callable[[str], object], *, base_dir: Path | None = None) -> AppConfig:
    """Build the config from the file and the context (``context(key)`` returns None when unset).

    Relative ``-c config=`` paths are resolved against ``base_dir`` (default: the working directory,
    which is the repository root when run through ``cdk``).
    """
    file_setting = context("config")
    if file_setting is None:
        path = DEFAULT_CONFIG_FILE
    else:
        path = Path(_as_str("config", file_setting))
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
    raw = read_config_file(path)
    unknown = set(raw) - set(_PARSERS) - {"$comment"}
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known keys: {', '.join(_PARSERS)}"
        )
    values: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        override = context(key)
        if override is not None:
            values[key] = parse(key, override)
        elif key in raw:
            values[key] = parse(key, raw[key])
    if "connections" not in values:
        raise ConfigurationError(
            f"no connections configured: add them to {path} or pass -c connections=NAME:DC[,NAME:DC…]"
        )
    return AppConfig(**values)
