"""``zoho-token audit`` end to end, reading audit events the real handler wrote to CloudWatch Logs.

The handler runs in this process on the simulator's clock, five simulated hours ending now; its
Powertools log lines are captured and put into a moto log group with the times they were written, which
is what Lambda does with a function's stdout. moto returns every secret version with the current time as
its creation date, so the times of the history come from the log group, as they would in an account
where the versions have been pruned.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from lambda_refresh import service
from lambda_refresh.handler import lambda_handler
from lambda_refresh.models import AccessTokenState, fingerprint
from lambda_refresh.observability import logger as service_logger
from tests import leakguard
from tests.e2e.harness import Cli, validate
from tests.e2e.schemas import AUDIT_SCHEMA
from tests.support import seed_connection
from zoho_token.local import LocalLambdaContext
from zoho_token.simulator import Fault

LOG_GROUP = "/aws/lambda/zoho-token-refresher"
MINUTE = 60


class LambdaLogs:
    """Runs the real handler and ships each invocation's log lines to a moto log group."""

    def __init__(self, aws: Any, clock: Any) -> None:
        self.clock = clock
        self.logs = boto3.client("logs", endpoint_url=aws.url, region_name="us-east-1")
        self.logs.create_log_group(logGroupName=LOG_GROUP)
        self.logs.put_retention_policy(logGroupName=LOG_GROUP, retentionInDays=30)
        self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="2026/11/25/[$LATEST]abc")
        self.stream = io.StringIO()
        inner = logging.getLogger(service_logger.name)
        template = next(
            h for h in inner.handlers if h.formatter is not None and not getattr(h, "_leakguard", False)
        )
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(template.formatter)
        inner.addHandler(self.handler)

    def invoke(self) -> None:
        start = self.stream.tell()
        lambda_handler({}, LocalLambdaContext())
        self.stream.seek(start)
        lines = [line for line in self.stream.read().splitlines() if line.strip()]
        timestamp = int(self.clock() * 1000)
        self.logs.put_log_events(
            logGroupName=LOG_GROUP,
            logStreamName="2026/11/25/[$LATEST]abc",
            logEvents=[{"timestamp": timestamp, "message": line} for line in lines],
        )

    def close(self) -> None:
        logging.getLogger(service_logger.name).removeHandler(self.handler)


@pytest.fixture
def lambda_logs(aws, zoho_clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaLogs]:
    monkeypatch.setenv("ZOHO_CONNECTIONS", "crm-eu")
    monkeypatch.setenv("ZOHO_ALLOW_LOCAL_ACCOUNTS", "true")
    monkeypatch.setenv("ZOHO_HTTP_TIMEOUT_SECONDS", "1")
    service.reset(clock=lambda: datetime.fromtimestamp(zoho_clock(), UTC))
    shipper = LambdaLogs(aws, zoho_clock)
    yield shipper
    shipper.close()
    service.reset()


def at(start: float, minutes: int) -> str:
    return datetime.fromtimestamp(start + minutes * MINUTE, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_audit_reports_refreshes_gaps_and_expired_windows_from_the_log_group(
    cli: Cli, secretsmanager, zoho, zoho_clock, lambda_logs
) -> None:
    start = float(int(time.time()) - 295 * MINUTE)
    zoho_clock.set(start)
    seed_connection(secretsmanager, zoho, "crm-eu")
    # minute 0: first refresh; 45: within the margin, refreshed; 90: Zoho down (failing, token kept);
    # 100: recovered; then the schedule stops for three hours, so the token from minute 100 expires at
    # 160 and is replaced only at 280. Minute 295 (now - 0) finds a fresh token and writes nothing.
    for minute, fault in ((0, None), (45, None), (90, Fault.HTTP_500), (100, None), (280, None), (295, None)):
        zoho_clock.set(start + minute * MINUTE)
        if fault is not None:
            zoho.inject(fault, count=2)  # both attempts of the bounded retry
        lambda_logs.invoke()
    versions = secretsmanager.list_secret_version_ids(
        SecretId="zoho/crm-eu/access-token", IncludeDeprecated=True
    )
    fingerprints = set()
    for version in versions["Versions"]:
        raw = secretsmanager.get_secret_value(
            SecretId="zoho/crm-eu/access-token", VersionId=version["VersionId"]
        )
        state = AccessTokenState.from_secret_string(raw["SecretString"])
        if state.access_token:
            leakguard.register(state.access_token)
            fingerprints.add(fingerprint(state.access_token))

    result = cli("audit", "--connection", "crm-eu", "--log-group", LOG_GROUP, "--since", "7d", "--json")

    assert result.code == 0, result.output
    document = result.json()
    validate(document, AUDIT_SCHEMA)
    assert document["log_group"] == LOG_GROUP
    (audit,) = document["connections"]
    refreshes = [e for e in audit["events"] if e["event"] == "token_refreshed"]
    assert [e["time"] for e in refreshes] == [at(start, m) for m in (0, 45, 100, 280)]
    assert all(e["source"] == "log+secret_version" for e in refreshes)
    assert {e["token_fingerprint"] for e in refreshes} == fingerprints
    assert [e["previous_status"] for e in refreshes] == ["pending", "ok", "failing", "ok"]
    (failure,) = [
        e for e in audit["events"] if e["event"] == "status_changed" and e["source"] != "secret_version"
    ]
    assert (failure["time"], failure["status"], failure["error_code"]) == (
        at(start, 90),
        "failing",
        "zoho_unavailable",
    )
    assert audit["refresh_count"] == 4
    assert audit["cadence"] == {
        "median_seconds": 55 * MINUTE,
        "mean_seconds": 280 * MINUTE // 3,
        "intervals": 3,
    }
    assert audit["longest_gap"] == {
        "from": at(start, 100),
        "to": at(start, 280),
        "seconds": 180 * MINUTE,
        "ongoing": False,
    }
    assert audit["expired_windows"] == [
        {"from": at(start, 160), "to": at(start, 280), "seconds": 120 * MINUTE, "ongoing": False}
    ]
    sources = {s["source"]: s for s in audit["sources"]}
    assert sources["log_group"]["read"] is True
    assert sources["log_group"]["retention_days"] == 30
    assert sources["log_group"]["records"] == 5
    assert "none pruned" in sources["access_token_versions"]["note"]
    assert len(audit["credentials_changes"]) == 2  # the deployment's placeholder and the bootstrap
    assert [a["resource_policy"] for a in audit["access"]] == [None, None]
    assert "no resource policy" in audit["access"][0]["note"]
    arn = secretsmanager.describe_secret(SecretId="zoho/crm-eu/access-token")["ARN"]
    assert any(f"AttributeValue={arn}" in c for c in audit["cloudtrail"]["lookup_events"])
    assert "GetSecretValue" in audit["cloudtrail"]["athena_sql"]

    table = cli("audit", "--connection", "crm-eu", "--log-group", LOG_GROUP)
    assert table.code == 0, table.output
    assert "token expired" in table.stdout
    assert "2 h 00 min" in table.stdout
    assert "3 h 00 min" in table.stdout
    assert "lookup-events" in table.stdout


def test_audit_without_log_group_says_what_the_versions_cover_and_shows_the_policy(
    cli: Cli, secretsmanager, zoho
) -> None:
    import json

    seed_connection(secretsmanager, zoho, "crm-eu")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/consumer"},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
            }
        ],
    }
    secretsmanager.put_resource_policy(SecretId="zoho/crm-eu/access-token", ResourcePolicy=json.dumps(policy))

    result = cli("audit", "--json", "--since", "24h")

    assert result.code == 0, result.output
    document = result.json()
    validate(document, AUDIT_SCHEMA)
    (audit,) = document["connections"]
    sources = {s["source"]: s for s in audit["sources"]}
    assert sources["log_group"]["read"] is False
    assert "--log-group" in sources["log_group"]["note"]
    assert sources["access_token_versions"]["read"] is True
    assert audit["access"][0]["resource_policy"] == [
        {
            "effect": "Allow",
            "principals": ["AWS:arn:aws:iam::123456789012:role/consumer"],
            "actions": ["secretsmanager:GetSecretValue"],
            "conditions": False,
        }
    ]
    assert audit["refresh_count"] == 0
    assert audit["longest_gap"]["ongoing"] is True
    since = datetime.fromisoformat(document["since"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - timedelta(hours=24) - since) < timedelta(minutes=1)

    bad = cli("audit", "--since", "yesterday")
    assert bad.code == 2
    missing = cli("audit", "--log-group", "/aws/lambda/nope")
    assert missing.code == 1
    assert "not found" in missing.stderr
