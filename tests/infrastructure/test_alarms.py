"""The alarm set, the metrics behind each alarm, where they notify, and the dashboard."""

from __future__ import annotations

from typing import Any

from tests.infrastructure.conftest import Deployment, logical_id_by_path, ref, resources

SERVICE = "zoho-token-sync-test"
NAMESPACE = "ZohoTokenSync"


def alarms_by_name(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources(deployment.json, "AWS::CloudWatch::Alarm").values()
    }


def custom(metric: str) -> dict[str, Any]:
    return {
        "MetricName": metric,
        "Namespace": NAMESPACE,
        "Dimensions": [{"Name": "service", "Value": SERVICE}],
    }


def metric_of(alarm: dict[str, Any]) -> dict[str, Any]:
    return {k: alarm[k] for k in ("MetricName", "Namespace", "Dimensions") if k in alarm}


def test_alarm_set(deployment: Deployment) -> None:
    assert sorted(alarms_by_name(deployment)) == sorted(
        f"{SERVICE}-{name}"
        for name in (
            "refresh-failures",
            "connection-needs-action",
            "token-nearly-expired",
            "scheduler-dead-letters",
            "failed-runs",
            "function-errors",
            "health-probe-failed",  # only because crm-eu has a health probe
        )
    )


def test_every_alarm_notifies_the_topic_on_alarm_and_recovery(deployment: Deployment) -> None:
    topic = ref(logical_id_by_path(deployment.json, "AWS::SNS::Topic", "AlarmTopic"))
    for name, alarm in alarms_by_name(deployment).items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name
        assert len(alarm["AlarmDescription"]) > 40, name


def test_refresh_failures_pages_on_two_of_three_runs_not_on_one_blip(deployment: Deployment) -> None:
    alarm = alarms_by_name(deployment)[f"{SERVICE}-refresh-failures"]
    assert metric_of(alarm) == custom("RefreshFailed")
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 600)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (2, 3)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_connections_needing_action(deployment: Deployment) -> None:
    alarm = alarms_by_name(deployment)[f"{SERVICE}-connection-needs-action"]
    assert metric_of(alarm) == custom("ConnectionsNeedingAction")
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Maximum", 600, 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (1, 1)


def test_health_probe_failures(deployment: Deployment) -> None:
    alarm = alarms_by_name(deployment)[f"{SERVICE}-health-probe-failed"]
    assert metric_of(alarm) == custom("HealthProbeFailed")
    # A token Zoho rejects before it expires is not a blip: one tick pages.
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 600, 1)
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (1, 1)


def test_token_nearly_expired_uses_the_fleet_minimum_and_treats_silence_as_breaching(
    deployment: Deployment,
) -> None:
    alarm = alarms_by_name(deployment)[f"{SERVICE}-token-nearly-expired"]
    assert metric_of(alarm) == custom("MinSecondsUntilExpiry")
    assert alarm["Statistic"] == "Minimum"
    assert alarm["Period"] >= 600  # at least one tick: every window holds a run's datapoint
    # At most one tick left after a run: the next tick is the token's last chance.
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanOrEqualToThreshold", 600)
    assert alarm["TreatMissingData"] == "breaching"


def test_failure_queue_alarms(deployment: Deployment) -> None:
    t = deployment.json
    alarms = alarms_by_name(deployment)
    for name, queue_part in (
        ("scheduler-dead-letters", "SchedulerDeadLetterQueue"),
        ("failed-runs", "FailedRunsQueue"),
    ):
        alarm = alarms[f"{SERVICE}-{name}"]
        queue = logical_id_by_path(t, "AWS::SQS::Queue", queue_part)
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        assert (alarm["Statistic"], alarm["Threshold"]) == ("Maximum", 1)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_function_errors(deployment: Deployment) -> None:
    t = deployment.json
    alarm = alarms_by_name(deployment)[f"{SERVICE}-function-errors"]
    function = logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": ref(function)}]
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1)


def test_dashboard_shows_every_metric_family(deployment: Deployment) -> None:
    (dashboard,) = resources(deployment.json, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == SERVICE
    body = str(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "RefreshSucceeded",
        "RefreshFailed",
        "ConnectionsChecked",
        "ConnectionsNeedingAction",
        "MinSecondsUntilExpiry",
        "HealthProbeFailed",
        "SecondsUntilExpiry",
        "RefreshFailuresByClass",
        "ApproximateNumberOfMessagesVisible",
    ):
        assert metric in body, metric
    for connection in ("crm-eu", "books-us", "desk-in"):
        assert f'\\"Connection\\",\\"{connection}\\"' in body or f'"Connection","{connection}"' in body


def test_custom_metric_alarms_are_the_shared_telemetry_rules(deployment: Deployment) -> None:
    """The construct alarms exactly as lambda_refresh.telemetry defines (the demo evaluates the same)."""
    from lambda_refresh.telemetry import ALARM_RULES

    alarms = alarms_by_name(deployment)
    for rule in ALARM_RULES:
        name = f"{SERVICE}-" + "".join(f"-{c.lower()}" if c.isupper() else c for c in rule.name).lstrip("-")
        alarm = alarms[name]
        assert alarm["MetricName"] == rule.metric
        assert alarm["Statistic"] == rule.statistic
        assert alarm["ComparisonOperator"] == rule.comparison
        assert alarm["Threshold"] == rule.threshold
        assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (
            rule.datapoints_to_alarm,
            rule.evaluation_periods,
        )
        assert alarm["TreatMissingData"] == ("breaching" if rule.missing_data_breaching else "notBreaching")
        assert alarm["AlarmDescription"].lower().startswith(rule.why[:30].lower())
