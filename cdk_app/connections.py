"""Connections as the CDK app and construct see them: a name, a Zoho data center, an optional probe.

Kept free of aws-cdk-lib (and of ``lambda_refresh`` modules that import ``requests``; ``models`` is
standard library only) so configuration errors are reported before the jsii runtime starts. ``tests/infrastructure/test_config.py`` checks that
:data:`DATA_CENTER_CODES` matches ``lambda_refresh.zoho.DATA_CENTERS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from lambda_refresh.models import CONNECTION_NAME_PATTERN

#: Zoho data-center codes the refresher knows (``lambda_refresh.zoho.DATA_CENTERS``).
DATA_CENTER_CODES: Final = ("us", "eu", "in", "au", "jp", "cn", "ca", "sa", "uk", "ae")
#: The contract's connection-name rule (one definition, shared with the refresher); it keeps secret
#: names, metric dimensions and env values simple.
CONNECTION_NAME: Final = CONNECTION_NAME_PATTERN
MAX_CONNECTION_NAME_LENGTH: Final = 63
#: A Zoho API path used as the health probe: one leading '/', printable ASCII, no spaces, bounded (the
#: refresher appends it to the api_domain Zoho returned; '//' would make it a different host).
_PROBE_PATH: Final = re.compile(r"/(?!/)[!-~]{0,199}")


class ConfigurationError(ValueError):
    """Invalid construct props or app configuration; the message says what to change."""


@dataclass(frozen=True)
class Connection:
    """One Zoho OAuth client + refresh token in one data center.

    Example::

        Connection("crm-eu", "eu")
        Connection("crm-eu", "eu", health_probe_path="/crm/v8/users?type=CurrentUser")

    ``health_probe_path`` (optional) is an API path the refresher calls with a fresh token to prove it
    works; probe failures raise the ``HealthProbeFailed`` metric and its alarm.
    """

    name: str
    dc: str
    health_probe_path: str | None = None

    def __post_init__(self) -> None:
        validate_connection_name(self.name)
        if self.dc not in DATA_CENTER_CODES:
            raise ConfigurationError(
                f"connection {self.name!r}: unknown Zoho data center {self.dc!r}; "
                f"use one of: {', '.join(DATA_CENTER_CODES)}"
            )
        if self.health_probe_path is not None and not _PROBE_PATH.fullmatch(self.health_probe_path):
            raise ConfigurationError(
                f"connection {self.name!r}: health_probe_path must be an API path starting with one '/', "
                f"printable ASCII without spaces, at most 200 characters (got {self.health_probe_path!r})"
            )


def validate_connection_name(name: str) -> str:
    """Return ``name`` if it is a valid connection name, else raise :class:`ConfigurationError`."""
    if not isinstance(name, str) or not CONNECTION_NAME.fullmatch(name):
        raise ConfigurationError(
            f"invalid connection name {name!r}: use 1-63 characters, lowercase letters, digits and '-', "
            "starting with a letter or digit (e.g. crm-eu)"
        )
    return name


def check_unique(connections: Iterable[Connection]) -> None:
    """Raise :class:`ConfigurationError` if two connections share a name."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for connection in connections:
        if connection.name in seen and connection.name not in duplicates:
            duplicates.append(connection.name)
        seen.add(connection.name)
    if duplicates:
        raise ConfigurationError(f"duplicate connection name(s): {', '.join(duplicates)}")


def parse_connections(spec: str) -> tuple[Connection, ...]:
    """Parse ``"crm-eu:eu,books-us:us"`` (the ``-c connections=…`` context value).

    >>> [c.name for c in parse_connections("crm-eu:eu, books-us:us")]
    ['crm-eu', 'books-us']
    """
    connections: list[Connection] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, dc = item.partition(":")
        if not sep:
            raise ConfigurationError(
                f"connection {item!r} has no data center: write NAME:DC, e.g. crm-eu:eu "
                f"(data centers: {', '.join(DATA_CENTER_CODES)})"
            )
        connections.append(Connection(name.strip(), dc.strip()))
    if not connections:
        raise ConfigurationError("no connections given: write NAME:DC[,NAME:DC…], e.g. crm-eu:eu")
    check_unique(connections)
    return tuple(connections)
