"""The customer-managed key, the encrypted topic and log group, the queues' encryption."""

from __future__ import annotations

from typing import Any

from tests.infrastructure.conftest import (
    Deployment,
    get_att,
    logical_id_by_path,
    ref,
    region_endpoint,
    resources,
)

ACCOUNT = {"Ref": "AWS::AccountId"}


def _arn(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, *parts]]}


def key_statements(deployment: Deployment) -> list[dict[str, Any]]:
    t = deployment.json
    key = t["Resources"][logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey")]
    return list(key["Properties"]["KeyPolicy"]["Statement"])


def test_key_rotates_and_is_kept(deployment: Deployment) -> None:
    t = deployment.json
    (key,) = resources(t, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"  # the retained secrets stay readable only with it
    assert key["UpdateReplacePolicy"] == "Retain"


def test_key_policy_lets_cloudwatch_alarms_use_the_key_for_this_account_only(deployment: Deployment) -> None:
    cloudwatch = [
        s for s in key_statements(deployment) if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch == [
        {
            "Sid": "AllowCloudWatchAlarmsToUseTheTopicKey",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {
                    "aws:SourceArn": _arn(
                        ":cloudwatch:", {"Ref": "AWS::Region"}, ":", ACCOUNT, ":alarm:zoho-token-sync-test-*"
                    )
                },
            },
        }
    ]


def test_key_policy_lets_cloudwatch_logs_encrypt_log_groups_of_this_account_only(
    deployment: Deployment,
) -> None:
    logs = [
        s for s in key_statements(deployment) if s.get("Principal") == {"Service": region_endpoint("logs")}
    ]
    assert len(logs) == 1
    assert logs[0]["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": _arn(
                ":logs:", {"Ref": "AWS::Region"}, ":", ACCOUNT, ":log-group:*"
            )
        }
    }


def test_no_other_service_or_foreign_principal_in_the_key_policy(deployment: Deployment) -> None:
    for statement in key_statements(deployment):
        principal = statement["Principal"]
        if "AWS" in principal:  # the account itself (delegating to IAM), never another account
            assert principal["AWS"] == _arn(":iam::", ACCOUNT, ":root")
        else:
            assert principal["Service"] in ("cloudwatch.amazonaws.com", region_endpoint("logs"))


def test_alarm_topic_is_encrypted_with_the_key_and_enforces_tls(deployment: Deployment) -> None:
    t = deployment.json
    topic = logical_id_by_path(t, "AWS::SNS::Topic", "AlarmTopic")
    key = logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey")
    assert t["Resources"][topic]["Properties"]["KmsMasterKeyId"] == get_att(key)
    (policy,) = resources(t, "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [ref(topic)]
    stmts = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {
        "Sid": "AllowPublishThroughSSLOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:Publish",
        "Resource": ref(topic),
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    } in stmts
    publish = next(s for s in stmts if s["Effect"] == "Allow")
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    subscriptions = list(resources(t, "AWS::SNS::Subscription").values())
    assert [(s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subscriptions] == [
        ("email", "oncall@example.com")
    ]


def test_log_group_is_encrypted_retained_and_kept_for_the_configured_time(deployment: Deployment) -> None:
    t = deployment.json
    group_id = logical_id_by_path(t, "AWS::Logs::LogGroup", "TokenSyncLogGroup")
    group = t["Resources"][group_id]
    assert group["Properties"]["RetentionInDays"] == 731
    assert group["Properties"]["KmsKeyId"] == get_att(logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey"))
    assert group["DeletionPolicy"] == "Retain"
    function = logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher")
    assert t["Resources"][function]["Properties"]["LoggingConfig"] == {"LogGroup": ref(group_id)}
    outputs = [o for o in t["Outputs"].values() if o["Value"] == ref(group_id)]
    assert outputs, "the log group name is an output (zoho-token audit --log-group)"
    assert "audit" in outputs[0]["Description"]


def test_failure_queues_use_sse_sqs_and_enforce_tls(deployment: Deployment) -> None:
    t = deployment.json
    queues = resources(t, "AWS::SQS::Queue")
    assert len(queues) == 2
    for queue_id, queue in queues.items():
        # SSE-SQS: usable by any sender with sqs:SendMessage (Scheduler's role, Lambda for the
        # function's role) without key grants; the records hold no secret.
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
        (policy,) = [
            p
            for p in resources(t, "AWS::SQS::QueuePolicy").values()
            if p["Properties"]["Queues"] == [ref(queue_id)]
        ]
        (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
