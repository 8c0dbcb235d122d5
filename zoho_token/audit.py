"""``zoho-token audit``: the rotation history of connections, for security teams.

Two sources, each with limits the report states:

* the refresher's log group (``--log-group``), where the Lambda writes one JSON audit event per refresh or
  state change (``lambda_refresh.observability.audit``); it reaches back as far as the group's retention;
* the access-token secret's versions (``ListSecretVersionIds`` with ``IncludeDeprecated``), which also
  show writes the CLI made (bootstrap, refresh, revoke) but which Secrets Manager prunes beyond about 100
  versions — a few days at the refresher's cadence.

Events are joined on the secret version they wrote, so one refresh seen by both sources is one row.
From the refreshes the report derives the cadence, the longest gap and any window in which the stored
token had expired. It also lists the credentials secret's versions (when credentials changed), who may
read each secret (resource policy and KMS key) and the CloudTrail queries that show who actually did.
Credential values are never read: only versions, dates and policies.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from zoho_token.console import (
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
from zoho_token.status import SecretVersion, checked_names, list_connections, list_versions, listing_failure

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from lambda_refresh.store import SecretStore

SCHEMA_VERSION: Final = 1
DEFAULT_SINCE: Final = "7d"
AUDIT_EVENTS: Final = ("token_refreshed", "status_changed")
#: Secrets Manager deletes the oldest unlabelled versions beyond about this many.
VERSION_LIMIT: Final = 100
#: filter_log_events pages stop here; a longer history is reported as truncated.
MAX_LOG_EVENTS: Final = 50_000
_SINCE: Final = re.compile(r"(\d{1,5})\s*([wdhm])")
_UNITS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60}
_MAX_SINCE: Final = timedelta(days=400)
_AUDITED_CALLS: Final = (
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecret",
    "CreateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "UpdateSecretVersionStage",
    "PutResourcePolicy",
    "DeleteResourcePolicy",
)
NO_POLICY_NOTE: Final = (
    "no resource policy: access is governed by IAM identity policies — see the construct's grants "
    "(grant_read_access_token for consumers, grant_operate for operators, the refresher's own role)"
)


def parse_since(text: str, now: datetime) -> datetime:
    """``7d``, ``24h``, ``90m``, ``2w`` or an ISO-8601 time → the start of the audit window."""
    from lambda_refresh.models import InvalidSecretError, parse_time

    value = text.strip()
    match = _SINCE.fullmatch(value)
    if match:
        start = now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    else:
        try:
            start = parse_time(value, "--since")
        except InvalidSecretError:
            raise usage_error(
                "--since takes a duration such as 7d, 24h, 90m or 2w, or a time such as 2026-11-20T00:00:00Z"
            ) from None
    if start >= now:
        raise usage_error("--since must lie in the past")
    if now - start > _MAX_SINCE:
        raise usage_error("--since reaches back at most 400 days")
    return start


# ---------------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class AuditRecord:
    """One refresh or state change, from the log group, a secret version or both."""

    time: datetime
    event: str
    connection: str
    status: str | None
    previous_status: str | None
    token_fingerprint: str | None
    expires_at: datetime | None
    error_code: str | None
    credentials_version: str | None
    secret_version: str | None
    forced: bool | None
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "time": iso(self.time),
            "event": self.event,
            "status": self.status,
            "previous_status": self.previous_status,
            "token_fingerprint": self.token_fingerprint,
            "expires_at": iso(self.expires_at),
            "error_code": self.error_code,
            "credentials_version": self.credentials_version,
            "secret_version": self.secret_version,
            "forced": self.forced,
            "source": self.source,
        }


def _optional_time(value: object) -> datetime | None:
    from lambda_refresh.models import InvalidSecretError, parse_time

    if value is None:
        return None
    try:
        return parse_time(value, "time")
    except InvalidSecretError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_log_message(message: str) -> dict[str, Any] | None:
    """The JSON object of a Powertools log line, or None for anything else."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(message[start:])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def record_from_log(timestamp_ms: int, message: str) -> AuditRecord | None:
    """An audit event written by the refresher (``AuditEvent.to_json`` inside a Powertools line)."""
    data = parse_log_message(message)
    if (
        data is None
        or data.get("audit_event") not in AUDIT_EVENTS
        or not isinstance(data.get("connection"), str)
    ):
        return None
    forced = data.get("forced")
    return AuditRecord(
        time=datetime.fromtimestamp(timestamp_ms / 1000, UTC),
        event=str(data["audit_event"]),
        connection=str(data["connection"]),
        status=_text(data.get("status")),
        previous_status=_text(data.get("previous_status")),
        token_fingerprint=_text(data.get("token_fingerprint")),
        expires_at=_optional_time(data.get("expires_at")),
        error_code=_text(data.get("error_code")),
        credentials_version=_text(data.get("credentials_version")),
        secret_version=_text(data.get("secret_version")),
        forced=forced if isinstance(forced, bool) else None,
        source="log",
    )


@dataclass(frozen=True)
class VersionState:
    """The audit-relevant part of one access-token secret version (never the token itself)."""

    version: SecretVersion
    status: str | None
    token_fingerprint: str | None
    expires_at: datetime | None
    error_code: str | None
    credentials_version: str | None


def records_from_versions(
    connection: str, states: Sequence[VersionState], *, since: datetime
) -> list[AuditRecord]:
    """What each version changed relative to the one before it (``states`` oldest first).

    The first state may predate ``since``: it only serves as the baseline of the next one.
    """
    records: list[AuditRecord] = []
    previous: VersionState | None = None
    for state in states:
        created = state.version.created
        if created is not None and created >= since:
            if state.token_fingerprint is not None and (
                previous is None or previous.token_fingerprint != state.token_fingerprint
            ):
                event = "token_refreshed"
            elif previous is None or (previous.status, previous.error_code) != (
                state.status,
                state.error_code,
            ):
                event = "status_changed"
            else:
                event = "secret_written"
            records.append(
                AuditRecord(
                    time=created,
                    event=event,
                    connection=connection,
                    status=state.status,
                    previous_status=previous.status if previous else None,
                    token_fingerprint=state.token_fingerprint,
                    expires_at=state.expires_at,
                    error_code=state.error_code,
                    credentials_version=state.credentials_version,
                    secret_version=state.version.version_id,
                    forced=None,
                    source="secret_version",
                )
            )
        previous = state
    return records


def merge_records(
    log_records: Iterable[AuditRecord], version_records: Iterable[AuditRecord]
) -> list[AuditRecord]:
    """One row per write: a log event and the version it wrote are joined on the version id.

    The log event wins (it carries ``forced`` and the event name the refresher chose); its time is the
    Lambda's, which is when the write happened.
    """
    by_version: dict[str, AuditRecord] = {}
    merged: list[AuditRecord] = []
    for record in log_records:
        if record.secret_version is not None:
            by_version[record.secret_version] = record
        merged.append(record)
    for record in version_records:
        logged = by_version.get(record.secret_version or "")
        if logged is not None:
            merged[merged.index(logged)] = replace(logged, source="log+secret_version")
        else:
            merged.append(record)
    return sorted(merged, key=lambda r: r.time)


# ---------------------------------------------------------------------------------------------------------
# Analysis


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    ongoing: bool = False

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def to_json(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end),
            "seconds": self.seconds,
            "ongoing": self.ongoing,
        }


@dataclass(frozen=True)
class Analysis:
    refresh_count: int
    median_interval: float | None
    mean_interval: float | None
    longest_gap: Window | None
    expired_windows: tuple[Window, ...]

    def cadence_json(self) -> dict[str, Any] | None:
        if self.median_interval is None or self.mean_interval is None:
            return None
        return {
            "median_seconds": round(self.median_interval),
            "mean_seconds": round(self.mean_interval),
            "intervals": max(0, self.refresh_count - 1),
        }


def analyse(records: Iterable[AuditRecord], *, since: datetime, now: datetime) -> Analysis:
    """Cadence, longest gap and expired windows from the token refreshes among ``records``.

    The stored token is taken to be the one of the latest refresh; it "had expired" from its
    ``expires_at`` until the next refresh (or until now, then ``ongoing``).
    """
    refreshes = sorted((r for r in records if r.event == "token_refreshed"), key=lambda r: r.time)
    if not refreshes:
        return Analysis(0, None, None, Window(since, now, ongoing=True), ())
    intervals = [(b.time - a.time).total_seconds() for a, b in itertools.pairwise(refreshes)]
    gaps = [Window(a.time, b.time) for a, b in itertools.pairwise(refreshes)]
    gaps.append(Window(refreshes[-1].time, now, ongoing=True))
    longest = max(gaps, key=lambda w: w.seconds)
    expired: list[Window] = []
    for current, following in zip(refreshes, [*refreshes[1:], None], strict=True):
        if current.expires_at is None:
            continue
        end = following.time if following is not None else now
        if end > current.expires_at:
            expired.append(Window(current.expires_at, end, ongoing=following is None))
    return Analysis(
        refresh_count=len(refreshes),
        median_interval=statistics.median(intervals) if intervals else None,
        mean_interval=statistics.fmean(intervals) if intervals else None,
        longest_gap=longest,
        expired_windows=tuple(expired),
    )


# ---------------------------------------------------------------------------------------------------------
# Sources


@dataclass
class Source:
    """What one source covered, so the reader knows what the report cannot show."""

    source: str
    name: str | None
    read: bool
    start: datetime | None = None
    end: datetime | None = None
    records: int = 0
    note: str = ""
    retention_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "read": self.read,
            "from": iso(self.start),
            "to": iso(self.end),
            "records": self.records,
            "retention_days": self.retention_days,
            "note": self.note,
        }


def log_filter_pattern(connection: str | None) -> str:
    """A CloudWatch JSON filter for the refresher's audit lines (the client filters again anyway)."""
    events = " || ".join(f'$.audit_event = "{event}"' for event in AUDIT_EVENTS)
    if connection is None:
        return "{ " + events + " }"
    return "{ (" + events + f') && $.connection = "{connection}" }}'


@dataclass
class LogRead:
    records: list[AuditRecord]
    source: Source


def _not_found(group: str) -> CliError:
    return CliError(
        f"log group {group} not found in this region; pass the refresher's log group (the stack output "
        "LogGroupName) and the stack's --region"
    )


def _retention(logs: CloudWatchLogsClient, group: str) -> tuple[int | None, bool]:
    """``(retentionInDays or None for never, known)``; checks the group exists when allowed to."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        groups = logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("AccessDeniedException", "AccessDenied"):
            # grant_operate allows reading the group's events but not listing groups.
            return None, False
        raise aws_failure(err, f"reading log group {group}") from None
    except BotoCoreError as err:
        raise aws_failure(err, f"reading log group {group}") from None
    match = next((g for g in groups if g.get("logGroupName") == group), None)
    if match is None:
        raise _not_found(group)
    return match.get("retentionInDays"), True


def _audit_events(
    logs: CloudWatchLogsClient, group: str, *, since: datetime, now: datetime, connection: str | None
) -> tuple[list[AuditRecord], bool]:
    """The audit events of the window, and whether the read stopped at :data:`MAX_LOG_EVENTS`."""
    from botocore.exceptions import BotoCoreError, ClientError

    records: list[AuditRecord] = []
    kwargs: dict[str, Any] = {
        "logGroupName": group,
        "startTime": int(since.timestamp() * 1000),
        "endTime": int(now.timestamp() * 1000),
        "filterPattern": log_filter_pattern(connection),
    }
    seen = 0
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                seen += 1
                record = record_from_log(int(event.get("timestamp", 0)), event.get("message", ""))
                # Filtered again here: not every CloudWatch implementation applies JSON filter patterns.
                if record is not None and (connection is None or record.connection == connection):
                    records.append(record)
            token = page.get("nextToken")
            if not token:
                return records, False
            if seen >= MAX_LOG_EVENTS:
                return records, True
            kwargs["nextToken"] = token
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise _not_found(group) from None
        raise aws_failure(err, f"reading log group {group}") from None
    except BotoCoreError as err:
        raise aws_failure(err, f"reading log group {group}") from None


def read_log_group(
    logs: CloudWatchLogsClient,
    group: str,
    *,
    since: datetime,
    now: datetime,
    connection: str | None,
) -> LogRead:
    """Audit events in ``group`` between ``since`` and ``now``; raises :class:`CliError` if unreadable."""
    retention, retention_known = _retention(logs, group)
    records, truncated = _audit_events(logs, group, since=since, now=now, connection=connection)
    start = since if retention is None else max(since, now - timedelta(days=retention))
    if not retention_known:
        note = "retention unknown (logs:DescribeLogGroups not allowed): events older than it are missing"
    elif retention is None:
        note = "retention: never expire"
    else:
        note = f"retention {retention} days"
    note += f"; events before {short_time(start)} are not in this source"
    if retention is not None and start > since:
        note += f" (the group keeps only {retention} days, less than --since)"
    if truncated:
        note += f"; stopped after {MAX_LOG_EVENTS} log events: narrow --since"
    return LogRead(records, Source("log_group", group, True, start, now, len(records), note, retention))


def read_version_states(
    sm: SecretsManagerClient, secret_name: str, *, since: datetime
) -> tuple[list[VersionState], list[SecretVersion] | None]:
    """States of the versions created since ``since``, plus the one before (the baseline), oldest first."""
    from lambda_refresh.models import AccessTokenState, InvalidSecretError, fingerprint

    versions = list_versions(sm, secret_name, include_deprecated=True)
    if versions is None:
        return [], None
    epoch = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(enumerate(versions), key=lambda pair: (pair[1].created or epoch, pair[0]))
    chronological = [v for _, v in ordered]
    first_in_window = next(
        (i for i, v in enumerate(chronological) if v.created is not None and v.created >= since), None
    )
    if first_in_window is None:
        return [], versions
    wanted = chronological[max(0, first_in_window - 1) :]
    states: list[VersionState] = []
    for version in wanted:
        raw = sm.get_secret_value(SecretId=secret_name, VersionId=version.version_id).get("SecretString")
        try:
            state = AccessTokenState.from_secret_string(raw)
        except InvalidSecretError:
            states.append(VersionState(version, None, None, None, "invalid_secret", None))
            continue
        states.append(
            VersionState(
                version=version,
                status=state.status.value,
                token_fingerprint=fingerprint(state.access_token) if state.access_token else None,
                expires_at=state.expires_at if state.access_token else None,
                error_code=state.error.code if state.error else None,
                credentials_version=state.credentials_version,
            )
        )
    return states, versions


def versions_source(
    kind: str,
    secret_name: str,
    versions: list[SecretVersion] | None,
    *,
    since: datetime,
    now: datetime,
    records: int,
    cadence: float | None,
) -> Source:
    if versions is None:
        return Source(kind, secret_name, False, note="the secret does not exist")
    dates = [v.created for v in versions if v.created is not None]
    oldest = min(dates) if dates else None
    start = max(since, oldest) if oldest is not None else since
    if len(versions) >= VERSION_LIMIT:
        span = f" (≈ {human_duration(cadence * VERSION_LIMIT)} at the observed cadence)" if cadence else ""
        note = (
            f"{len(versions)} versions: Secrets Manager deletes unlabelled versions beyond about "
            f"{VERSION_LIMIT}{span}, so older history is gone from this source"
        )
    else:
        note = f"{len(versions)} versions, none pruned: complete since the secret was created"
    if oldest is not None and oldest > since:
        note += f"; nothing before {short_time(oldest)}"
    return Source(kind, secret_name, True, start, now, records, note)


# ---------------------------------------------------------------------------------------------------------
# Access and CloudTrail


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [json.dumps(value, sort_keys=True)]


def summarise_policy(policy_text: str) -> list[dict[str, Any]]:
    """Statements of a resource policy as effect / principals / actions / whether conditions apply."""
    try:
        policy = json.loads(policy_text)
    except ValueError:
        return [{"effect": "unparsed", "principals": [], "actions": [], "conditions": False}]
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    summary: list[dict[str, Any]] = []
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, dict):
            continue
        principal = statement.get("Principal", statement.get("NotPrincipal"))
        negated = "NotPrincipal" in statement
        if isinstance(principal, dict):
            principals = [f"{kind}:{p}" for kind, value in sorted(principal.items()) for p in _as_list(value)]
        else:
            principals = _as_list(principal)
        if negated:
            principals = [f"NOT {p}" for p in principals]
        actions = _as_list(statement.get("Action"))
        actions += [f"NOT {a}" for a in _as_list(statement.get("NotAction"))]
        summary.append(
            {
                "effect": str(statement.get("Effect", "")),
                "principals": principals,
                "actions": actions,
                "conditions": bool(statement.get("Condition")),
            }
        )
    return summary


def read_access(sm: SecretsManagerClient, secret_name: str) -> dict[str, Any]:
    """Who may read a secret as far as the secret itself says: its resource policy and KMS key."""
    from botocore.exceptions import BotoCoreError, ClientError

    entry: dict[str, Any] = {
        "secret": secret_name,
        "arn": None,
        "kms_key": None,
        "resource_policy": None,
        "note": "",
    }
    try:
        described = sm.describe_secret(SecretId=secret_name)
        entry["arn"] = described.get("ARN")
        entry["kms_key"] = described.get("KmsKeyId") or "aws/secretsmanager (the account's default key)"
        policy = sm.get_resource_policy(SecretId=secret_name).get("ResourcePolicy")
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", "Unknown"))
        entry["note"] = (
            "the secret does not exist" if code == "ResourceNotFoundException" else f"not readable ({code})"
        )
        return entry
    except BotoCoreError as err:
        entry["note"] = f"not readable ({type(err).__name__})"
        return entry
    if policy:
        entry["resource_policy"] = summarise_policy(policy)
        entry["note"] = (
            "the resource policy below and IAM identity policies both grant access; the KMS key policy "
            "also governs decryption"
        )
    else:
        entry["note"] = NO_POLICY_NOTE + "; the KMS key policy also governs decryption"
    return entry


def cloudtrail_queries(
    *, connection: str, prefix: str, arns: Sequence[str], region: str, since: datetime
) -> dict[str, Any]:
    """Queries that show who called Secrets Manager for this connection's secrets, in a real account."""
    start = iso(since)
    names = f"{prefix}{connection}/"
    calls = ", ".join(f"'{c}'" for c in _AUDITED_CALLS)
    lookup = [
        f"aws cloudtrail lookup-events --region {region} --start-time {start} --lookup-attributes "
        f"AttributeKey=ResourceName,AttributeValue={arn} "
        "--query 'Events[].[EventTime,EventName,Username]' --output table"
        for arn in arns
    ]
    athena = (
        "SELECT eventtime, eventname, useridentity.arn AS caller, sourceipaddress,\n"
        "       json_extract_scalar(requestparameters, '$.secretId') AS secret\n"
        "FROM cloudtrail_logs -- your Athena table over the CloudTrail bucket\n"
        "WHERE eventsource = 'secretsmanager.amazonaws.com'\n"
        f"  AND eventname IN ({calls})\n"
        f"  AND json_extract_scalar(requestparameters, '$.secretId') LIKE '%{names}%'\n"
        f"  AND awsregion = '{region}' AND eventtime >= '{start}'\n"
        "ORDER BY eventtime"
    )
    lake = (
        "SELECT eventTime, eventName, userIdentity.arn, sourceIPAddress,\n"
        "       element_at(requestParameters, 'secretId') AS secret\n"
        "FROM <event-data-store-id>\n"
        "WHERE eventSource = 'secretsmanager.amazonaws.com'\n"
        f"  AND eventName IN ({calls})\n"
        f"  AND element_at(requestParameters, 'secretId') LIKE '%{names}%'\n"
        f"  AND awsRegion = '{region}' AND eventTime >= '{since.strftime('%Y-%m-%d %H:%M:%S')}'\n"
        "ORDER BY eventTime"
    )
    return {
        "note": (
            "CloudTrail records every GetSecretValue and PutSecretValue with the caller's identity. "
            "lookup-events covers the last 90 days of this region only; for longer history query the "
            "trail's S3 bucket with Athena or a CloudTrail Lake event data store. Callers may name a "
            "secret by name or ARN, hence the LIKE."
        ),
        "lookup_events": lookup,
        "athena_sql": athena,
        "cloudtrail_lake_sql": lake,
    }


# ---------------------------------------------------------------------------------------------------------
# The command


@dataclass(frozen=True)
class AuditOptions:
    connections: tuple[str, ...] = ()
    since: str = DEFAULT_SINCE
    log_group: str | None = None
    prefix: str | None = None
    region: str | None = None


@dataclass
class ConnectionAudit:
    connection: str
    records: list[AuditRecord]
    analysis: Analysis
    sources: list[Source]
    credentials_changes: list[SecretVersion]
    access: list[dict[str, Any]]
    cloudtrail: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "sources": [s.to_json() for s in self.sources],
            "events": [r.to_json() for r in self.records],
            "refresh_count": self.analysis.refresh_count,
            "cadence": self.analysis.cadence_json(),
            "longest_gap": self.analysis.longest_gap.to_json() if self.analysis.longest_gap else None,
            "expired_windows": [w.to_json() for w in self.analysis.expired_windows],
            "credentials_changes": [
                {"version_id": v.version_id, "created_at": iso(v.created), "stages": list(v.stages)}
                for v in self.credentials_changes
            ],
            "access": self.access,
            "cloudtrail": self.cloudtrail,
            "notes": list(self.notes),
        }


def audit_connection(
    sm: SecretsManagerClient,
    store: SecretStore,
    connection: str,
    *,
    log_records: list[AuditRecord] | None,
    log_source: Source,
    since: datetime,
    now: datetime,
    prefix: str,
    region: str,
) -> ConnectionAudit:
    from botocore.exceptions import BotoCoreError, ClientError

    token_name = store.access_token_name(connection)
    credentials_name = store.credentials_name(connection)
    notes: list[str] = []
    try:
        states, token_versions = read_version_states(sm, token_name, since=since)
    except (ClientError, BotoCoreError) as err:
        states, token_versions = [], None
        notes.append(aws_failure(err, f"reading the versions of {token_name}").message)
    version_records = records_from_versions(connection, states, since=since)
    own_logs = [r for r in (log_records or []) if r.connection == connection]
    records = merge_records(own_logs, version_records)
    analysis = analyse(records, since=since, now=now)
    try:
        credential_versions = list_versions(sm, credentials_name, include_deprecated=True)
    except (ClientError, BotoCoreError) as err:
        credential_versions = None
        notes.append(aws_failure(err, f"listing the versions of {credentials_name}").message)
    epoch = datetime.min.replace(tzinfo=UTC)
    changes = sorted(
        (
            v
            for v in credential_versions or []
            if v.created is None or v.created >= since or "AWSCURRENT" in v.stages
        ),
        key=lambda v: v.created or epoch,
    )
    log_part = replace(log_source, records=len(own_logs)) if log_source.read else log_source
    sources = [
        log_part,
        versions_source(
            "access_token_versions",
            token_name,
            token_versions,
            since=since,
            now=now,
            records=len(version_records),
            cadence=analysis.median_interval,
        ),
        versions_source(
            "credentials_versions",
            credentials_name,
            credential_versions,
            since=since,
            now=now,
            records=len(changes),
            cadence=None,
        ),
    ]
    access = [read_access(sm, token_name), read_access(sm, credentials_name)]
    arns = [a["arn"] for a in access if a["arn"]]
    cloudtrail = cloudtrail_queries(
        connection=connection, prefix=prefix, arns=arns, region=region, since=since
    )
    return ConnectionAudit(connection, records, analysis, sources, changes, access, cloudtrail, notes)


def audit_document(
    audits: Sequence[ConnectionAudit],
    *,
    since: datetime,
    now: datetime,
    region: str,
    prefix: str,
    log_group: str | None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": iso(now),
        "since": iso(since),
        "until": iso(now),
        "region": region,
        "prefix": prefix,
        "log_group": log_group,
        "connections": [a.to_json() for a in audits],
    }


def run_audit(options: AuditOptions, out: Output, env: Mapping[str, str]) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_refresh.store import SecretStore

    prefix = resolve_prefix(options.prefix, env)
    requested = checked_names(options.connections)
    if options.log_group is not None and not re.fullmatch(r"[\w./#-]{1,512}", options.log_group):
        raise usage_error(
            "--log-group must be a CloudWatch Logs group name such as /aws/lambda/zoho-token-refresher"
        )
    now = utc_now()
    since = parse_since(options.since, now)
    aws = aws_session(options.region, env)
    sm = aws.secretsmanager()
    store = SecretStore(sm, prefix=prefix)
    with out.spinner("Reading the audit trail…"):
        try:
            names = requested or list_connections(sm, prefix)
        except (ClientError, BotoCoreError) as err:
            raise listing_failure(err, prefix) from None
        if options.log_group is not None:
            log_read = read_log_group(
                aws.logs(),
                options.log_group,
                since=since,
                now=now,
                connection=names[0] if len(names) == 1 else None,
            )
            log_records: list[AuditRecord] | None = log_read.records
            log_source = log_read.source
        else:
            log_records = None
            log_source = Source(
                "log_group",
                None,
                False,
                note="not read: pass --log-group (the refresher's log group, a stack output) to see events "
                "older than the secret versions reach",
            )
        audits = [
            audit_connection(
                sm,
                store,
                name,
                log_records=log_records,
                log_source=log_source,
                since=since,
                now=now,
                prefix=prefix,
                region=aws.region,
            )
            for name in names
        ]
    if out.json_mode:
        out.print_json(
            audit_document(
                audits, since=since, now=now, region=aws.region, prefix=prefix, log_group=options.log_group
            )
        )
    elif not audits:
        out.result(f"No connections under prefix {prefix} in {aws.region}; check --prefix and --region.")
    elif not out.quiet:
        for audit in audits:
            render_audit(out, audit, since=since, now=now)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# Human output


def render_audit(out: Output, audit: ConnectionAudit, *, since: datetime, now: datetime) -> None:
    from rich.rule import Rule
    from rich.table import Table

    console = out.out
    console.print(Rule(f"Audit of {audit.connection}: {short_time(since)} → {short_time(now)}", align="left"))
    sources = Table(title="Sources and the window each covers", title_justify="left")
    for header in ("source", "name", "covers", "records", "note"):
        sources.add_column(header, overflow="fold")
    for source in audit.sources:
        covers = f"{short_time(source.start)} → {short_time(source.end)}" if source.read else "not read"
        sources.add_row(source.source, source.name or "-", covers, str(source.records), source.note)
    console.print(sources)

    events = Table(title="Refreshes and state changes", title_justify="left")
    for header in ("time", "event", "status", "token", "expires", "error", "forced", "source"):
        events.add_column(header, overflow="fold")
    for record in audit.records:
        status = record.status or "-"
        if record.previous_status and record.previous_status != record.status:
            status = f"{record.previous_status} → {status}"
        events.add_row(
            short_time(record.time),
            record.event,
            status,
            record.token_fingerprint or "-",
            short_time(record.expires_at),
            record.error_code or "-",
            "-" if record.forced is None else ("yes" if record.forced else "no"),
            record.source,
        )
    console.print(events)

    analysis = audit.analysis
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("refreshes", str(analysis.refresh_count))
    if analysis.median_interval is not None and analysis.mean_interval is not None:
        summary.add_row(
            "cadence",
            f"median {human_duration(analysis.median_interval)}, mean {human_duration(analysis.mean_interval)}",
        )
    if analysis.longest_gap is not None:
        gap = analysis.longest_gap
        summary.add_row(
            "longest gap",
            f"{human_duration(gap.seconds)}: {short_time(gap.start)} → "
            f"{'now' if gap.ongoing else short_time(gap.end)}",
        )
    if analysis.expired_windows:
        for window in analysis.expired_windows:
            summary.add_row(
                "token expired",
                f"{short_time(window.start)} → {'now (ongoing)' if window.ongoing else short_time(window.end)} "
                f"({human_duration(window.seconds)})",
            )
    else:
        summary.add_row("token expired", "never within the sources' windows")
    console.print(summary)

    changes = Table(title="Credentials versions (bootstrap / replace)", title_justify="left")
    for header in ("version", "created", "stages"):
        changes.add_column(header)
    for version in audit.credentials_changes:
        changes.add_row(version.version_id, short_time(version.created), ", ".join(version.stages) or "-")
    console.print(changes)

    console.print("Who may read", style="bold")
    for entry in audit.access:
        console.print(
            f"  {entry['secret']} ({entry['arn'] or 'ARN unknown'}), KMS key {entry['kms_key'] or '-'}"
        )
        console.print(f"    {entry['note']}")
        for statement in entry["resource_policy"] or []:
            condition = " (with conditions)" if statement["conditions"] else ""
            console.print(
                f"    {statement['effect']} {', '.join(statement['principals']) or '-'}: "
                f"{', '.join(statement['actions']) or '-'}{condition}"
            )
    console.print("CloudTrail: who actually read or wrote the secrets", style="bold")
    console.print(f"  {audit.cloudtrail['note']}")
    for command in audit.cloudtrail["lookup_events"]:
        console.print(f"  {command}")
    console.print("  Athena:")
    for line in str(audit.cloudtrail["athena_sql"]).splitlines():
        console.print(f"    {line}")
    for note in audit.notes:
        out.warn(f"{audit.connection}: {note}")
