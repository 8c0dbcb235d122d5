"""Shapes of the two secrets, the handler's events and its results (see the interface contract).

Plain dataclasses rather than pydantic: the Lambda asset stays small and imports fast, and every parser
here returns a clear :class:`InvalidSecretError` / :class:`InvalidEventError` whose message names the
field that is wrong and never contains a secret value.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1
TOKEN_TYPE = "Zoho-oauthtoken"  # noqa: S105 - a header scheme, not a secret
CONNECTION_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Status(StrEnum):
    """Connection health as stored in the access-token secret."""

    PENDING = "pending"
    OK = "ok"
    FAILING = "failing"
    REVOKED = "revoked"
    MISCONFIGURED = "misconfigured"


class Outcome(StrEnum):
    """What one handler invocation did for one connection."""

    REFRESHED = "refreshed"
    FRESH = "fresh"
    FAILED = "failed"
    REVOKED = "revoked"
    MISCONFIGURED = "misconfigured"
    PENDING = "pending"
    SKIPPED = "skipped"


class InvalidSecretError(ValueError):
    """A secret's JSON does not have the contract's shape. The message names the field, not the value."""


class InvalidEventError(ValueError):
    """A handler event is not one of the contract's shapes."""


def validate_connection_name(name: object) -> str:
    """Return ``name`` if it is a valid connection name, else raise ``ValueError`` saying the rule."""
    if not isinstance(name, str) or not CONNECTION_NAME_PATTERN.fullmatch(name):
        # Described, never quoted: a confused caller may have pasted a token where the name belongs.
        shown = (
            f"(a string of {len(name)} characters)" if isinstance(name, str) else f"(a {type(name).__name__})"
        )
        raise ValueError(
            f"invalid connection name {shown}: use 1-63 characters, lowercase letters, digits and '-', "
            "starting with a letter or digit (e.g. crm-eu)"
        )
    return name


def fingerprint(secret_value: str) -> str:
    """Short, non-reversible identifier of a secret value, safe to print and log (sha256 prefix)."""
    return hashlib.sha256(secret_value.encode("utf-8")).hexdigest()[:12]


def sha256_hex(secret_value: str) -> str:
    """Full sha256 hex digest: what consumers send as ``invalid_token_sha256``."""
    return hashlib.sha256(secret_value.encode("utf-8")).hexdigest()


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z`` suffix and whole seconds, as every time in the secrets."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, field_name: str) -> datetime:
    """Parse an ISO-8601 time (``Z`` or offset) into an aware UTC datetime."""
    if not isinstance(value, str):
        raise InvalidSecretError(f"field '{field_name}' must be an ISO-8601 time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidSecretError(f"field '{field_name}' is not an ISO-8601 time") from err
    if parsed.tzinfo is None:
        raise InvalidSecretError(f"field '{field_name}' must carry a time zone (use ...Z)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC equivalent
        raise InvalidSecretError(f"field '{field_name}' is out of range") from None


def _optional_time(data: dict[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    return None if value is None else parse_time(value, key)


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSecretError(f"field '{key}' must be a string or null")
    return value


def _required_str(data: dict[str, Any], key: str, secret_kind: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidSecretError(f"{secret_kind} secret: field '{key}' is missing or not a non-empty string")
    return value


def load_json_object(secret_string: object, secret_kind: str) -> dict[str, Any]:
    """Decode a SecretString into a JSON object, with errors that never echo the content."""
    if not isinstance(secret_string, str):
        raise InvalidSecretError(f"{secret_kind} secret has no SecretString (binary secrets are not used)")
    try:
        data = json.loads(secret_string)
    except (ValueError, RecursionError) as err:
        raise InvalidSecretError(f"{secret_kind} secret is not valid JSON") from err
    if not isinstance(data, dict):
        raise InvalidSecretError(f"{secret_kind} secret must be a JSON object")
    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise InvalidSecretError(
            f"{secret_kind} secret has schema {schema!r:.20}; this version understands schema {SCHEMA_VERSION}"
        )
    return data


@dataclass(frozen=True)
class Credentials:
    """The ``{prefix}{name}/credentials`` secret: what only the refresher and operators may read."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    dc: str
    accounts_url: str
    api_domain: str | None
    scope: str | None
    issued_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_secret_string(cls, secret_string: object) -> Credentials:
        """Parse and validate; raises :class:`NotBootstrappedError` for the CDK placeholder."""
        data = load_json_object(secret_string, "credentials")
        if data.get("bootstrapped") is False or (
            "client_id" not in data and "refresh_token" not in data and "client_secret" not in data
        ):
            raise NotBootstrappedError("credentials secret holds the deployment's placeholder")
        known = {
            "schema",
            "client_id",
            "client_secret",
            "refresh_token",
            "dc",
            "accounts_url",
            "api_domain",
            "scope",
            "issued_at",
        }
        return cls(
            client_id=_required_str(data, "client_id", "credentials"),
            client_secret=_required_str(data, "client_secret", "credentials"),
            refresh_token=_required_str(data, "refresh_token", "credentials"),
            dc=_required_str(data, "dc", "credentials"),
            accounts_url=_required_str(data, "accounts_url", "credentials"),
            api_domain=_optional_str(data, "api_domain"),
            scope=_optional_str(data, "scope"),
            issued_at=_optional_time(data, "issued_at"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_secret_string(self) -> str:
        body: dict[str, Any] = {
            **self.extra,
            "schema": SCHEMA_VERSION,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "dc": self.dc,
            "accounts_url": self.accounts_url,
            "api_domain": self.api_domain,
            "scope": self.scope,
            "issued_at": format_time(self.issued_at) if self.issued_at else None,
        }
        return json.dumps(body, separators=(",", ":"))


class NotBootstrappedError(InvalidSecretError):
    """The credentials secret still holds the placeholder a deployment created."""


@dataclass(frozen=True)
class ErrorInfo:
    """The ``error`` object of the access-token secret."""

    code: str
    message: str
    since: datetime

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "since": format_time(self.since)}

    @classmethod
    def from_json(cls, value: object) -> ErrorInfo | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidSecretError("access-token secret: field 'error' must be an object or null")
        code = value.get("code")
        message = value.get("message", "")
        if not isinstance(code, str) or not isinstance(message, str):
            raise InvalidSecretError("access-token secret: 'error.code'/'error.message' must be strings")
        return cls(code=code, message=message, since=parse_time(value.get("since"), "error.since"))


@dataclass(frozen=True)
class AccessTokenState:
    """The ``{prefix}{name}/access-token`` secret: what consumers read.

    ``recent_mints`` (times this project minted a token for the connection, newest last, pruned to
    Zoho's 10-minute window) and ``retry_not_before`` (rate-limit back-off) are additions the contract
    allows; consumers ignore them.
    """

    access_token: str | None = field(default=None, repr=False)
    token_type: str = TOKEN_TYPE
    api_domain: str | None = None
    dc: str | None = None
    scope: str | None = None
    expires_at: datetime | None = None
    refreshed_at: datetime | None = None
    status: Status = Status.PENDING
    error: ErrorInfo | None = None
    credentials_version: str | None = None
    recent_mints: tuple[datetime, ...] = ()
    retry_not_before: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_secret_string(cls, secret_string: object) -> AccessTokenState:
        data = load_json_object(secret_string, "access-token")
        raw_status = data.get("status", Status.PENDING.value)
        try:
            status = Status(raw_status)
        except ValueError as err:
            raise InvalidSecretError(
                f"access-token secret: unknown status {str(raw_status)[:20]!r}; "
                f"expected one of {', '.join(s.value for s in Status)}"
            ) from err
        mints_raw = data.get("recent_mints", [])
        if not isinstance(mints_raw, list):
            raise InvalidSecretError("access-token secret: field 'recent_mints' must be a list")
        token = _optional_str(data, "access_token")
        if token is not None and not token:
            token = None
        known = {
            "schema",
            "access_token",
            "token_type",
            "api_domain",
            "dc",
            "scope",
            "expires_at",
            "refreshed_at",
            "status",
            "error",
            "credentials_version",
            "recent_mints",
            "retry_not_before",
        }
        return cls(
            access_token=token,
            token_type=_optional_str(data, "token_type") or TOKEN_TYPE,
            api_domain=_optional_str(data, "api_domain"),
            dc=_optional_str(data, "dc"),
            scope=_optional_str(data, "scope"),
            expires_at=_optional_time(data, "expires_at"),
            refreshed_at=_optional_time(data, "refreshed_at"),
            status=status,
            error=ErrorInfo.from_json(data.get("error")),
            credentials_version=_optional_str(data, "credentials_version"),
            recent_mints=tuple(parse_time(m, "recent_mints[]") for m in mints_raw[-50:]),
            retry_not_before=_optional_time(data, "retry_not_before"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_secret_string(self) -> str:
        body: dict[str, Any] = {
            **self.extra,
            "schema": SCHEMA_VERSION,
            "access_token": self.access_token,
            "token_type": self.token_type,
            "api_domain": self.api_domain,
            "dc": self.dc,
            "scope": self.scope,
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
            "refreshed_at": format_time(self.refreshed_at) if self.refreshed_at else None,
            "status": self.status.value,
            "error": self.error.to_json() if self.error else None,
            "credentials_version": self.credentials_version,
            "recent_mints": [format_time(m) for m in self.recent_mints],
            "retry_not_before": format_time(self.retry_not_before) if self.retry_not_before else None,
        }
        return json.dumps(body, separators=(",", ":"))

    def seconds_until_expiry(self, now: datetime) -> float | None:
        if self.access_token is None or self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds()

    def with_changes(self, **changes: Any) -> AccessTokenState:
        return replace(self, **changes)


@dataclass(frozen=True)
class RefreshRequest:
    """A parsed handler event. ``connection`` None means every configured connection."""

    connection: str | None = None
    force: bool = False
    invalid_token_sha256: str | None = None

    @classmethod
    def from_event(cls, event: object) -> RefreshRequest:
        if event is None:
            return cls()
        if not isinstance(event, dict):
            raise InvalidEventError('event must be a JSON object such as {} or {"connection": "crm-eu"}')
        connection = event.get("connection")
        force = event.get("force", False)
        digest = event.get("invalid_token_sha256")
        if connection is not None and (
            not isinstance(connection, str) or not CONNECTION_NAME_PATTERN.fullmatch(connection)
        ):
            # Not echoed: a confused caller might have put a token where the name belongs.
            shape = (
                f"a string of {len(connection)} characters"
                if isinstance(connection, str)
                else type(connection).__name__
            )
            raise InvalidEventError(
                f"'connection' must be a connection name (1-63 of a-z, 0-9, '-'), got {shape}"
            )
        if not isinstance(force, bool):
            raise InvalidEventError("'force' must be true or false")
        if digest is not None:
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
                raise InvalidEventError(
                    "'invalid_token_sha256' must be the 64-character sha256 hex of a token"
                )
            digest = digest.lower()
        if (force or digest is not None) and connection is None:
            raise InvalidEventError("'force' and 'invalid_token_sha256' need a 'connection'")
        return cls(connection=connection, force=force, invalid_token_sha256=digest)


@dataclass(frozen=True)
class ConnectionResult:
    """One entry of the handler's ``results`` list."""

    connection: str
    outcome: Outcome
    expires_at: datetime | None = None
    error: ErrorInfo | None = None
    status: Status | None = None
    zoho_calls: int = 0
    #: The :class:`lambda_refresh.zoho.ErrorClass` value of a Zoho failure, for the failures-by-class metric.
    error_class: str | None = None
    #: The token health probe's verdict when one ran ("ok", "rejected", "inconclusive").
    probe: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "outcome": self.outcome.value,
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
            "error": self.error.to_json() if self.error else None,
        }


def credentials_placeholder(connection: str) -> str:
    """What a deployment puts in a credentials secret until ``zoho-token bootstrap`` replaces it.

    Byte-for-byte stable (sorted keys, no timestamps, not even the DC): CloudFormation rewrites a
    secret only when its template value changes, so a stable value means a redeploy never puts the
    placeholder back over bootstrapped credentials.
    """
    return json.dumps(
        {"schema": 1, "bootstrapped": False, "connection": connection}, sort_keys=True, separators=(",", ":")
    )


def initial_access_token() -> str:
    """What a deployment puts in an access-token secret: ``pending``, the same for every connection
    (stable for the same reason; the DC is recorded by the bootstrap and the refresher)."""
    return json.dumps(
        {
            "schema": 1,
            "access_token": None,
            "token_type": TOKEN_TYPE,
            "api_domain": None,
            "dc": None,
            "scope": None,
            "expires_at": None,
            "refreshed_at": None,
            "status": Status.PENDING.value,
            "error": None,
            "credentials_version": None,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
