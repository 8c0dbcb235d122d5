"""The audit's pure parts: --since, joining the two sources, cadence, gaps and expired windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lambda_refresh.models import Status
from lambda_refresh.refresh import AuditEvent
from zoho_token.audit import (
    AuditRecord,
    VersionState,
    analyse,
    log_filter_pattern,
    merge_records,
    parse_since,
    record_from_log,
    records_from_versions,
    summarise_policy,
)
from zoho_token.console import CliError
from zoho_token.status import SecretVersion, connection_from_secret_name

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def refresh(minutes_ago: int, lifetime: int = 60, version: str | None = None) -> AuditRecord:
    time = NOW - timedelta(minutes=minutes_ago)
    return AuditRecord(
        time=time,
        event="token_refreshed",
        connection="crm-eu",
        status="ok",
        previous_status="ok",
        token_fingerprint=f"{minutes_ago:012x}",
        expires_at=time + timedelta(minutes=lifetime),
        error_code=None,
        credentials_version="c1",
        secret_version=version or f"v{minutes_ago}",
        forced=False,
        source="log",
    )


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("7d", timedelta(days=7)),
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_since_durations(text: str, delta: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - delta


def test_since_accepts_an_iso_time_and_rejects_the_rest() -> None:
    assert parse_since("2026-11-20T00:00:00Z", NOW) == datetime(2026, 11, 20, tzinfo=UTC)
    for bad in ("yesterday", "7", "-7d", "2027-01-01T00:00:00Z", "1000d"):
        with pytest.raises(CliError) as caught:
            parse_since(bad, NOW)
        assert caught.value.exit_code == 2


def test_regular_refreshes_have_no_expired_window() -> None:
    records = [refresh(m) for m in (180, 135, 90, 45, 0)]
    analysis = analyse(records, since=NOW - timedelta(days=7), now=NOW)
    assert analysis.refresh_count == 5
    assert analysis.median_interval == analysis.mean_interval == 45 * 60
    assert analysis.expired_windows == ()
    assert analysis.longest_gap is not None
    assert analysis.longest_gap.seconds == 45 * 60


def test_a_stopped_schedule_shows_as_an_ongoing_expired_window_and_gap() -> None:
    records = [refresh(300), refresh(255)]
    analysis = analyse(records, since=NOW - timedelta(days=1), now=NOW)
    (window,) = analysis.expired_windows
    assert window.ongoing
    assert window.start == NOW - timedelta(minutes=195)
    assert window.end == NOW
    assert analysis.longest_gap is not None
    assert analysis.longest_gap.ongoing
    assert analysis.longest_gap.seconds == 255 * 60


def test_no_refresh_at_all_is_one_gap_over_the_whole_window() -> None:
    analysis = analyse([], since=NOW - timedelta(hours=5), now=NOW)
    assert analysis.refresh_count == 0
    assert analysis.cadence_json() is None
    assert analysis.longest_gap is not None
    assert analysis.longest_gap.seconds == 5 * 3600


def test_log_lines_are_read_back_from_the_refreshers_own_event() -> None:
    event = AuditEvent(
        event="token_refreshed",
        connection="crm-eu",
        status=Status.OK,
        previous_status=Status.FAILING,
        token_fingerprint="abcdef012345",
        expires_at=NOW + timedelta(hours=1),
        error_code=None,
        credentials_version="c1",
        secret_version="v9",
        forced=True,
    )
    line = json.dumps({"level": "INFO", "message": "audit", "service": "zoho-token-sync", **event.to_json()})
    record = record_from_log(int(NOW.timestamp() * 1000), line)
    assert record is not None
    assert (record.time, record.event, record.previous_status, record.forced) == (
        NOW,
        "token_refreshed",
        "failing",
        True,
    )
    assert record.expires_at == NOW + timedelta(hours=1)
    assert record_from_log(0, '{"message": "run complete"}') is None
    assert record_from_log(0, "START RequestId: 123") is None


def test_a_write_seen_in_both_sources_is_one_row() -> None:
    logged = refresh(45, version="v1")
    versions = [
        VersionState(SecretVersion("v0", NOW - timedelta(days=9), ()), "pending", None, None, None, None),
        VersionState(
            SecretVersion("v1", NOW - timedelta(minutes=45), ()), "ok", "aaaaaaaaaaaa", NOW, None, "c1"
        ),
        VersionState(
            SecretVersion("v2", NOW - timedelta(minutes=5), ("AWSCURRENT",)),
            "revoked",
            None,
            None,
            "revoked_by_operator",
            "c1",
        ),
    ]
    from_versions = records_from_versions("crm-eu", versions, since=NOW - timedelta(days=7))
    assert [r.secret_version for r in from_versions] == ["v1", "v2"]  # v0 is only the baseline
    assert [r.event for r in from_versions] == ["token_refreshed", "status_changed"]
    merged = merge_records([logged], from_versions)
    assert [(r.secret_version, r.source) for r in merged] == [
        ("v1", "log+secret_version"),
        ("v2", "secret_version"),
    ]
    assert merged[0].forced is False  # the log's fields win


def test_policy_summary_and_filter_pattern() -> None:
    policy = {
        "Statement": {
            "Effect": "Deny",
            "Principal": "*",
            "NotAction": ["secretsmanager:DescribeSecret"],
            "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "123456789012"}},
        }
    }
    assert summarise_policy(json.dumps(policy)) == [
        {
            "effect": "Deny",
            "principals": ["*"],
            "actions": ["NOT secretsmanager:DescribeSecret"],
            "conditions": True,
        }
    ]
    assert log_filter_pattern("crm-eu") == (
        '{ ($.audit_event = "token_refreshed" || $.audit_event = "status_changed") && $.connection = "crm-eu" }'
    )


def test_connection_names_come_only_from_the_two_secret_kinds() -> None:
    assert connection_from_secret_name("zoho/crm-eu/access-token", "zoho/") == "crm-eu"
    assert connection_from_secret_name("zoho/crm-eu/credentials", "zoho/") == "crm-eu"
    assert connection_from_secret_name("zoho/crm-eu/other", "zoho/") is None
    assert connection_from_secret_name("zoho/a/b/credentials", "zoho/") is None
    assert connection_from_secret_name("prod/crm-eu/credentials", "zoho/") is None
