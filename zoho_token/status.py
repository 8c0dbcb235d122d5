"""``zoho-token status``: one line per connection from the access-token secrets, never a secret value.

The credentials secret's value is never read here: its version id and the date that version was created
come from ``ListSecretVersionIds``, so ``status`` works with read access to access-token secrets plus
``DescribeSecret``-level rights on the credentials.

``--json`` prints a stable document (``schema`` 1, documented in docs/cli.md)::

    {"schema": 1, "generated_at": "...", "prefix": "zoho/", "region": "eu-west-1",
     "connections": [{"connection": "crm-eu", "dc": "eu", "status": "ok", ...}]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from zoho_token.console import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    Output,
    aws_failure,
    aws_session,
    human_duration,
    iso,
    resolve_prefix,
    short_time,
    usage_error,
    utc_now,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from lambda_refresh.store import SecretStore

SCHEMA_VERSION: Final = 1
#: Statuses the CLI adds to the contract's five when the access-token secret cannot be used at all.
MISSING: Final = "missing"
UNREADABLE: Final = "unreadable"
_SUFFIXES: Final = ("/access-token", "/credentials")
_STYLES: Final = {
    "ok": "green",
    "pending": "cyan",
    "failing": "yellow",
    "revoked": "bold red",
    "misconfigured": "bold red",
    MISSING: "bold red",
    UNREADABLE: "bold red",
}


@dataclass
class ConnectionStatus:
    """One row of ``status``; :meth:`to_json` is the documented JSON shape."""

    connection: str
    access_token_secret: str
    credentials_secret: str
    status: str
    dc: str | None = None
    expires_at: datetime | None = None
    expires_in_seconds: int | None = None
    refreshed_at: datetime | None = None
    token_fingerprint: str | None = None
    api_domain: str | None = None
    scope: str | None = None
    error: dict[str, Any] | None = None
    credentials_version: str | None = None
    credentials_changed_at: datetime | None = None
    token_credentials_version: str | None = None
    revoked: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "dc": self.dc,
            "status": self.status,
            "expires_at": iso(self.expires_at),
            "expires_in_seconds": self.expires_in_seconds,
            "refreshed_at": iso(self.refreshed_at),
            "token_fingerprint": self.token_fingerprint,
            "api_domain": self.api_domain,
            "scope": self.scope,
            "error": self.error,
            "credentials_version": self.credentials_version,
            "credentials_changed_at": iso(self.credentials_changed_at),
            "token_credentials_version": self.token_credentials_version,
            "revoked": self.revoked,
            "access_token_secret": self.access_token_secret,
            "credentials_secret": self.credentials_secret,
            "notes": list(self.notes),
        }


def connection_from_secret_name(secret_name: str, prefix: str) -> str | None:
    """``zoho/crm-eu/access-token`` → ``crm-eu`` (None for names that are not a connection's secret)."""
    from lambda_refresh.models import CONNECTION_NAME_PATTERN

    if not secret_name.startswith(prefix):
        return None
    rest = secret_name[len(prefix) :]
    for suffix in _SUFFIXES:
        if rest.endswith(suffix):
            name = rest[: -len(suffix)]
            return name if CONNECTION_NAME_PATTERN.fullmatch(name) else None
    return None


def list_connections(sm: SecretsManagerClient, prefix: str) -> list[str]:
    """Connection names under ``prefix``, from either of their two secrets, sorted."""
    names: set[str] = set()
    # The name filter narrows the listing server-side; the exact check below keeps only our secrets.
    paginator = sm.get_paginator("list_secrets")
    for page in paginator.paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
        for entry in page.get("SecretList", []):
            name = connection_from_secret_name(entry.get("Name", ""), prefix)
            if name is not None:
                names.add(name)
    return sorted(names)


@dataclass(frozen=True)
class SecretVersion:
    """One entry of ListSecretVersionIds (no value)."""

    version_id: str
    created: datetime | None
    stages: tuple[str, ...]


def list_versions(
    sm: SecretsManagerClient, secret_name: str, *, include_deprecated: bool = False
) -> list[SecretVersion] | None:
    """Every version of a secret (with ``include_deprecated`` also the unlabelled ones); None if absent.

    Raises botocore errors other than ResourceNotFound.
    """
    from datetime import UTC

    from botocore.exceptions import ClientError

    versions: list[SecretVersion] = []
    kwargs: dict[str, Any] = {
        "SecretId": secret_name,
        "IncludeDeprecated": include_deprecated,
        "MaxResults": 100,
    }
    try:
        while True:
            page = sm.list_secret_version_ids(**kwargs)
            for entry in page.get("Versions", []):
                created = entry.get("CreatedDate")
                versions.append(
                    SecretVersion(
                        entry["VersionId"],
                        created.astimezone(UTC) if created is not None else None,
                        tuple(entry.get("VersionStages", [])),
                    )
                )
            token = page.get("NextToken")
            if not token:
                return versions
            kwargs["NextToken"] = token
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise


def current_version(sm: SecretsManagerClient, secret_name: str) -> SecretVersion | None:
    """The AWSCURRENT version without reading the value; None if the secret is absent."""
    for version in list_versions(sm, secret_name) or []:
        if "AWSCURRENT" in version.stages:
            return version
    return None


def read_status(sm: SecretsManagerClient, store: SecretStore, name: str, now: datetime) -> ConnectionStatus:
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_refresh.models import InvalidSecretError, fingerprint
    from lambda_refresh.store import SecretMissingError, StoreError

    row = ConnectionStatus(
        connection=name,
        access_token_secret=store.access_token_name(name),
        credentials_secret=store.credentials_name(name),
        status=UNREADABLE,
    )
    try:
        credentials = current_version(sm, row.credentials_secret)
    except (ClientError, BotoCoreError) as err:
        credentials = None
        row.notes.append(f"credentials versions not readable ({aws_failure(err, 'listing').message})")
    else:
        if credentials is None:
            row.notes.append(f"credentials secret {row.credentials_secret} does not exist")
        else:
            row.credentials_version, row.credentials_changed_at = credentials.version_id, credentials.created
    try:
        state = store.read_access_token(name).value
    except SecretMissingError:
        row.status = MISSING
        row.error = {
            "code": "secret_missing",
            "message": f"{row.access_token_secret} does not exist: deploy the stack with this connection or "
            f"run 'zoho-token bootstrap --connection {name}'",
            "since": None,
        }
        return row
    except InvalidSecretError as err:
        row.error = {"code": "invalid_secret", "message": str(err), "since": None}
        return row
    except StoreError as err:
        row.error = {
            "code": err.aws_code,
            "message": f"reading {row.access_token_secret} failed ({err.aws_code}); check your AWS access",
            "since": None,
        }
        return row
    row.status = state.status.value
    row.dc = state.dc
    row.expires_at = state.expires_at if state.access_token else None
    remaining = state.seconds_until_expiry(now)
    row.expires_in_seconds = None if remaining is None else int(remaining)
    row.refreshed_at = state.refreshed_at
    row.token_fingerprint = fingerprint(state.access_token) if state.access_token else None
    row.api_domain = state.api_domain
    row.scope = state.scope
    row.error = state.error.to_json() if state.error else None
    row.token_credentials_version = state.credentials_version
    if "revoked_at" in state.extra or "revoked_by" in state.extra:
        row.revoked = {"at": state.extra.get("revoked_at"), "by": state.extra.get("revoked_by")}
    if remaining is not None and remaining <= 0:
        row.notes.append("the stored token has expired")
    if (
        row.credentials_version is not None
        and state.credentials_version is not None
        and state.credentials_version != row.credentials_version
        and state.status.value == "ok"
    ):
        row.notes.append(
            "the stored token was made from an older credentials version; the next refresh uses the new one"
        )
    return row


def status_document(
    rows: Iterable[ConnectionStatus], *, prefix: str, region: str, now: datetime
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": iso(now),
        "prefix": prefix,
        "region": region,
        "connections": [row.to_json() for row in rows],
    }


def _expires_cell(row: ConnectionStatus) -> str:
    if row.expires_in_seconds is None:
        return "-"
    if row.expires_in_seconds <= 0:
        return f"expired {human_duration(row.expires_in_seconds)} ago"
    return f"in {human_duration(row.expires_in_seconds)}"


def _refreshed_cell(row: ConnectionStatus, now: datetime) -> str:
    if row.refreshed_at is None:
        return "never"
    return f"{human_duration((now - row.refreshed_at).total_seconds())} ago"


def render_table(
    out: Output, rows: list[ConnectionStatus], now: datetime, *, prefix: str, region: str
) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Zoho connections under {prefix} in {region}", title_justify="left")
    for header in ("connection", "dc", "status", "token expires", "refreshed", "last error", "credentials"):
        table.add_column(header, overflow="fold")
    for row in rows:
        error = "-" if row.error is None else f"{row.error['code']}: {row.error['message']}"
        credentials = "-"
        if row.credentials_version is not None:
            credentials = f"{row.credentials_version[:8]} since {short_time(row.credentials_changed_at)}"
        table.add_row(
            row.connection,
            row.dc or "-",
            Text(row.status, style=_STYLES.get(row.status, "")),
            _expires_cell(row),
            _refreshed_cell(row, now),
            error,
            credentials,
        )
    out.out.print(table)
    for row in rows:
        if row.revoked is not None:
            out.out.print(f"{row.connection}: revoked by {row.revoked.get('by')} at {row.revoked.get('at')}")
        for note in row.notes:
            out.out.print(f"{row.connection}: {note}")


@dataclass(frozen=True)
class StatusOptions:
    connections: tuple[str, ...] = ()
    prefix: str | None = None
    region: str | None = None


def listing_failure(err: BaseException, prefix: str) -> CliError:
    """ListSecrets cannot be limited to some secrets, so operator roles often lack it: say how to cope."""
    from botocore.exceptions import ClientError

    if isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") in (
        "AccessDeniedException",
        "AccessDenied",
    ):
        return CliError(
            f"listing the secrets under {prefix} needs secretsmanager:ListSecrets, which your identity lacks "
            "(the construct's grant_operate covers only the connections' own secrets); name the connections "
            "instead: --connection NAME (repeatable)"
        )
    return aws_failure(err, f"listing secrets under {prefix}")


def checked_names(names: Iterable[str]) -> list[str]:
    from lambda_refresh.models import validate_connection_name

    checked: list[str] = []
    for name in names:
        try:
            checked.append(validate_connection_name(name))
        except ValueError as err:
            raise usage_error(str(err)) from None
    return list(dict.fromkeys(checked))


def run_status(options: StatusOptions, out: Output, env: Mapping[str, str]) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_refresh.store import SecretStore

    prefix = resolve_prefix(options.prefix, env)
    requested = checked_names(options.connections)
    aws = aws_session(options.region, env)
    sm = aws.secretsmanager()
    store = SecretStore(sm, prefix=prefix)
    now = utc_now()
    with out.spinner("Reading connection status…"):
        try:
            names = requested or list_connections(sm, prefix)
        except (ClientError, BotoCoreError) as err:
            raise listing_failure(err, prefix) from None
        try:
            rows = [read_status(sm, store, name, now) for name in names]
        except BotoCoreError as err:
            raise aws_failure(err, "reading connection status") from None
    if not rows and not out.json_mode:
        out.result(
            f"No connections under prefix {prefix} in {aws.region}. Deploy the stack (or run zoho-token "
            "bootstrap), or check --prefix and --region."
        )
    if out.json_mode:
        out.print_json(status_document(rows, prefix=prefix, region=aws.region, now=now))
    elif rows and not out.quiet:
        render_table(out, rows, now, prefix=prefix, region=aws.region)
    # Reading worked but a connection's secret is absent or unusable: an AWS-side problem to fix.
    broken = [row for row in rows if row.status in (MISSING, UNREADABLE)]
    for row in broken:
        if row.error is not None:
            out.error(f"{row.connection}: {row.error['message']}")
    return EXIT_FAILURE if broken else EXIT_OK
