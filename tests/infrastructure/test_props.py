"""Construct props are validated before anything is created, with messages that say what to change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack

from cdk_app.connections import ConfigurationError, Connection
from cdk_app.construct import ZohoTokenSync, ZohoTokenSyncProps
from cdk_app.limits import MAX_CONNECTIONS
from tests.infrastructure.conftest import synth_sync

CRM = Connection("crm-eu", "eu")


def make(**overrides: Any) -> ZohoTokenSync:
    props: dict[str, Any] = {"connections": [CRM], **overrides}
    stack = Stack(App(), "Props")
    return ZohoTokenSync(stack, "TokenSync", ZohoTokenSyncProps(**props))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"connections": []}, "at least one connection"),
        (
            {"connections": [Connection(f"c{i}", "eu") for i in range(MAX_CONNECTIONS + 1)]},
            f"{MAX_CONNECTIONS + 1} connections given, at most {MAX_CONNECTIONS}",
        ),
        ({"connections": [CRM, Connection("crm-eu", "us")]}, "duplicate connection name.*crm-eu"),
        ({"connections": [("crm-eu", "eu")]}, "must be Connection objects"),
        ({"secret_prefix": ""}, "secret_prefix"),
        ({"secret_prefix": "has space/"}, "secret_prefix"),
        ({"secret_prefix": "x" * 33}, "secret_prefix"),
        ({"service_name": "bad name"}, "service_name"),
        ({"metrics_namespace": "bad namespace!"}, "metrics_namespace"),
        ({"schedule_interval": Duration.seconds(90)}, "whole number of minutes from 2 to 30"),
        ({"schedule_interval": Duration.minutes(31)}, "whole number of minutes from 2 to 30"),
        ({"refresh_margin": Duration.minutes(10)}, "longer than schedule_interval"),
        ({"refresh_margin": Duration.minutes(51)}, "at most 50 minutes"),
        ({"token_budget": 11}, "token_budget must be 1-10"),
        ({"refresh_concurrency": 0}, "refresh_concurrency"),
        ({"reserved_concurrency": 0}, "reserved_concurrency must be 1-10, or None"),
        ({"alarm_email": "not-an-address"}, "alarm_email"),
    ],
)
def test_invalid_props_are_refused_with_a_clear_message(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make(**overrides)


@pytest.mark.parametrize(
    ("name", "dc", "message"),
    [
        ("CRM-EU", "eu", "invalid connection name 'CRM-EU'.*lowercase"),
        ("-crm", "eu", "invalid connection name"),
        ("crm_eu", "eu", "invalid connection name"),
        ("c" * 64, "eu", "1-63 characters"),
        (
            "crm-eu",
            "europe",
            "unknown Zoho data center 'europe'; use one of: us, eu, in, au, jp, cn, ca, sa, uk, ae",
        ),
        ("crm-eu", "EU", "unknown Zoho data center"),
    ],
)
def test_connections_are_validated(name: str, dc: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Connection(name, dc)


def test_health_probe_path_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="health_probe_path"):
        Connection("crm-eu", "eu", health_probe_path="https://elsewhere.example/steal")
    with pytest.raises(ConfigurationError, match="health_probe_path"):
        Connection("crm-eu", "eu", health_probe_path="//elsewhere.example/steal")
    assert Connection("crm-eu", "eu", health_probe_path="/crm/v8/users?type=CurrentUser").health_probe_path


def test_unknown_connection_in_a_grant_names_the_known_ones(tmp_path: Path) -> None:
    _, sync, _ = synth_sync(tmp_path, ZohoTokenSyncProps(connections=[CRM]))
    with pytest.raises(
        ConfigurationError, match="unknown connection 'books-us'; this deployment manages: crm-eu"
    ):
        sync.access_token_secret("books-us")


def test_reserved_concurrency_can_be_turned_off_and_alarms_follow_the_schedule(tmp_path: Path) -> None:
    props = ZohoTokenSyncProps(
        connections=[CRM],
        reserved_concurrency=None,
        schedule_interval=Duration.minutes(5),
        refresh_margin=Duration.minutes(20),
    )
    _, _, template = synth_sync(tmp_path, props)
    function = next(v for v in template["Resources"].values() if v["Type"] == "AWS::Lambda::Function")
    assert "ReservedConcurrentExecutions" not in function["Properties"]
    schedule = next(v for v in template["Resources"].values() if v["Type"] == "AWS::Scheduler::Schedule")
    assert schedule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert schedule["Properties"]["Target"]["RetryPolicy"]["MaximumEventAgeInSeconds"] == 150
    alarms = {
        v["Properties"]["AlarmName"]: v["Properties"]
        for v in template["Resources"].values()
        if v["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarms["zoho-token-sync-refresh-failures"]["Period"] == 300
    assert alarms["zoho-token-sync-token-nearly-expired"]["Period"] == 360
    assert alarms["zoho-token-sync-token-nearly-expired"]["Threshold"] == 300  # one tick left
    assert "zoho-token-sync-health-probe-failed" not in alarms  # no connection has a probe
