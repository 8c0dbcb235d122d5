"""The refresher function, its asynchronous invoke config and the schedule that drives it."""

from __future__ import annotations

import json

from aws_cdk import aws_lambda as lambda_

from cdk_app.asset import ASSET_PYTHON_VERSION, HANDLER
from cdk_app.bundling import RUNTIME
from tests.infrastructure.conftest import Deployment, get_att, logical_id_by_path, ref, resources

TICK_SECONDS = 600


def test_runtime_is_the_newest_python_cdk_offers_and_matches_the_asset() -> None:
    pythons = [r for r in lambda_.Runtime.ALL if r.family == lambda_.RuntimeFamily.PYTHON]
    newest = max(pythons, key=lambda r: tuple(int(p) for p in r.name.removeprefix("python").split(".")))
    assert RUNTIME.name == newest.name
    assert RUNTIME.name == f"python{ASSET_PYTHON_VERSION}"


def test_function_configuration(deployment: Deployment) -> None:
    t = deployment.json
    function = t["Resources"][logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher")][
        "Properties"
    ]
    assert function["Runtime"] == f"python{ASSET_PYTHON_VERSION}"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == HANDLER == "lambda_refresh.handler.lambda_handler"
    assert function["ReservedConcurrentExecutions"] == 1
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Timeout"] < TICK_SECONDS // 2
    assert "VpcConfig" not in function
    env = function["Environment"]["Variables"]
    assert env == {
        "ZOHO_SECRET_PREFIX": "zoho/",
        "ZOHO_CONNECTIONS": "crm-eu,books-us,desk-in",
        "REFRESH_MARGIN_SECONDS": "900",
        "ZOHO_TOKEN_BUDGET": "5",
        "REFRESH_CONCURRENCY": "16",
        "ZOHO_HEALTH_PROBES": '{"crm-eu":"/crm/v8/users?type=CurrentUser"}',
        "POWERTOOLS_SERVICE_NAME": "zoho-token-sync-test",
        "POWERTOOLS_METRICS_NAMESPACE": "ZohoTokenSync",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    assert json.loads(env["ZOHO_HEALTH_PROBES"]) == {"crm-eu": "/crm/v8/users?type=CurrentUser"}


def test_async_invocations_are_not_retried_expire_within_a_tick_and_fail_to_a_queue(
    deployment: Deployment,
) -> None:
    t = deployment.json
    function = logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher")
    queue = logical_id_by_path(t, "AWS::SQS::Queue", "FailedRunsQueue")
    (config,) = resources(t, "AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    assert props["FunctionName"] == ref(function)
    assert props["Qualifier"] == "$LATEST"
    assert props["MaximumRetryAttempts"] == 0  # the next tick is the retry
    assert 60 <= props["MaximumEventAgeInSeconds"] < TICK_SECONDS
    assert props["DestinationConfig"] == {"OnFailure": {"Destination": get_att(queue)}}


def test_schedule_every_ten_minutes_with_delivery_retries_and_dead_letter_queue(
    deployment: Deployment,
) -> None:
    t = deployment.json
    (schedule,) = resources(t, "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(10 minutes)"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["State"] == "ENABLED"
    target = props["Target"]
    assert target["Arn"] == get_att(logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher"))
    assert target["RoleArn"] == get_att(logical_id_by_path(t, "AWS::IAM::Role", "SchedulerRole"))
    assert json.loads(target["Input"]) == {}  # the contract's scheduled event
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] < TICK_SECONDS
    assert target["DeadLetterConfig"] == {
        "Arn": get_att(logical_id_by_path(t, "AWS::SQS::Queue", "SchedulerDeadLetterQueue"))
    }
    # A schedule, not a Secrets Manager rotation (which cannot run more often than every 4 hours).
    assert not resources(t, "AWS::SecretsManager::RotationSchedule")
    assert not resources(t, "AWS::Events::Rule")


def test_outputs_for_operators_have_plain_names(deployment: Deployment) -> None:
    t = deployment.json
    outputs = {k: v["Value"] for k, v in t["Outputs"].items() if not k.startswith("PublishOutput")}
    assert outputs == {
        "LogGroupName": ref(logical_id_by_path(t, "AWS::Logs::LogGroup", "TokenSyncLogGroup")),
        "FunctionName": ref(logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher")),
        "KeyArn": get_att(logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey")),
        "AlarmTopicArn": ref(logical_id_by_path(t, "AWS::SNS::Topic", "AlarmTopic")),
        "SecretPrefix": "zoho/",
        "DashboardName": ref(logical_id_by_path(t, "AWS::CloudWatch::Dashboard", "Dashboard")),
    }
