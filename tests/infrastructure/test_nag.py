"""cdk-nag v3 AwsSolutionsChecks: zero unacknowledged findings, and every acknowledgment accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from cdk_app.connections import Connection
from cdk_app.construct import ZohoTokenSyncProps
from cdk_app.nag import MIN_REASON_LENGTH
from tests.infrastructure.conftest import Deployment, logical_id_by_path, resources, synth_sync

#: Every acknowledgment of a deployment (path suffix -> rule), each explained in README.
EXPECTED_ACKNOWLEDGMENTS = {
    ("TokenSync/Connections", "AwsSolutions-SMG4"),  # Secrets Manager rotation: 4 h minimum, tokens live 1 h
    ("TokenSync/SchedulerDeadLetterQueue", "AwsSolutions-SQS3"),  # it IS a dead-letter queue
    ("TokenSync/FailedRunsQueue", "AwsSolutions-SQS3"),  # it IS the on-failure destination
    ("TokenSync/RefresherRole", "AwsSolutions-IAM5[Resource::*]"),  # X-Ray has no resource-level perms
}
#: One more per configured operator role: ListSecrets (names only) has no resource-level permissions.
OPERATOR_ACKNOWLEDGMENTS = {
    ("Operator0", "AwsSolutions-IAM5[Resource::*]"),
    ("Operator1", "AwsSolutions-IAM5[Resource::*]"),
}


def acknowledgments(root: IConstruct) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) of every ``Validations.acknowledge`` in the tree."""
    found: list[tuple[str, str, str]] = []
    for construct in root.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, reason in dict(entry.data).items():
                    found.append((construct.node.path, rule.split("::", 1)[-1], str(reason)))
    return found


def test_main_app_has_no_unacknowledged_findings(deployment: Deployment) -> None:
    # The fixture's app.synth() ran the plugin and would have raised on any finding; check the report.
    report = json.loads((deployment.outdir / "validation-report.json").read_text())
    violations = [v for plugin in report.get("pluginReports", []) for v in plugin.get("violations", [])]
    assert violations == []


def test_acknowledgments_are_few_known_and_explained(deployment: Deployment) -> None:
    found = acknowledgments(deployment.app)
    print(f"\ncdk-nag acknowledgments: {len(found)}")
    for path, rule, reason in found:
        print(f"  {rule} on {path}: {reason}")
        assert len(reason) >= MIN_REASON_LENGTH
    assert len(found) == len(EXPECTED_ACKNOWLEDGMENTS | OPERATOR_ACKNOWLEDGMENTS) == 6
    assert {(path.split("/", 1)[1], rule) for path, rule, _ in found} == (
        EXPECTED_ACKNOWLEDGMENTS | OPERATOR_ACKNOWLEDGMENTS
    )
    # None on the sample consumer stack: its role and function pass every rule as they are.
    assert not [path for path, _, _ in found if path.startswith(deployment.consumer_stack.stack_name)]


def test_nag_fails_synthesis_on_a_finding(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Careless")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS"):
        app.synth()


def test_vpc_variant_is_clean_and_its_wildcard_reason_says_why(tmp_path: Path) -> None:
    def props(stack: Stack) -> ZohoTokenSyncProps:
        vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1, flow_logs={"all": ec2.FlowLogOptions()})
        return ZohoTokenSyncProps(connections=[Connection("crm-eu", "eu")], vpc=vpc)

    _, sync, template = synth_sync(tmp_path, props, nag=True)
    function = template["Resources"][
        logical_id_by_path(template, "AWS::Lambda::Function", "TokenSyncRefresher")
    ]
    assert "VpcConfig" in function["Properties"]
    group = template["Resources"][
        logical_id_by_path(template, "AWS::EC2::SecurityGroup", "RefresherSecurityGroup")
    ]
    assert group["Properties"]["SecurityGroupEgress"] == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to Zoho and AWS APIs",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    assert "SecurityGroupIngress" not in group["Properties"]
    ((_, rule, reason),) = acknowledgments(sync.function.role)  # type: ignore[arg-type]
    assert rule == "AwsSolutions-IAM5[Resource::*]"
    assert "ec2:CreateNetworkInterface" in reason
    assert len(acknowledgments(sync)) == len(EXPECTED_ACKNOWLEDGMENTS)


def test_existing_key_variant_is_clean_and_creates_no_key(tmp_path: Path) -> None:
    arn = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"

    def props(stack: Stack) -> ZohoTokenSyncProps:
        key = kms.Key.from_key_arn(stack, "Shared", arn)
        return ZohoTokenSyncProps(connections=[Connection("crm-eu", "eu")], encryption_key=key)

    _, sync, template = synth_sync(tmp_path, props, nag=True)
    assert not resources(template, "AWS::KMS::Key")
    assert sync.key.key_arn == arn
    for secret in resources(template, "AWS::SecretsManager::Secret").values():
        assert secret["Properties"]["KmsKeyId"] == arn


def test_default_app_has_exactly_the_four_construct_acknowledgments(tmp_path: Path) -> None:
    from cdk_app.app import build
    from cdk_app.config import load_config
    from tests.infrastructure.conftest import new_app

    app = new_app(tmp_path, bundle=False)
    build(app, load_config(lambda key: None))  # cdk_app/config.json, as `cdk synth` without -c
    app.synth()
    found = acknowledgments(app)
    assert {(path.split("/", 1)[1], rule) for path, rule, _ in found} == EXPECTED_ACKNOWLEDGMENTS
    assert len(found) == 4
