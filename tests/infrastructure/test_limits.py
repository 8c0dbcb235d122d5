"""The connection maximum, re-derived from a synthesized worst case (see cdk_app/limits.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2

from cdk_app.connections import ConfigurationError, Connection
from cdk_app.construct import ZohoTokenSyncProps
from cdk_app.limits import (
    CFN_RESOURCES_PER_STACK,
    FIXED_RESOURCES,
    IAM_ROLE_INLINE_POLICY_LIMIT,
    LAMBDA_ENVIRONMENT_LIMIT,
    MAX_CONNECTIONS,
    MAX_PREFIX_LENGTH,
    POLICY_FIXED_CHARS,
    WORST_CASE_ARN_LENGTH,
    environment_size,
)
from tests.infrastructure.conftest import logical_id_by_path, resources, synth_sync

PREFIX = "p" * (MAX_PREFIX_LENGTH - 1) + "/"
#: Worst-case lengths of what the intrinsics in the refresher's policy resolve to at deploy time.
ARN_HEAD = "arn:aws-iso-b:{service}:us-isob-east-1:123456789012:"  # longest partition + region
LONGEST_STACK_NAME = "S" * 128


def worst_case_names(count: int) -> list[str]:
    return [f"{i:02d}-" + "n" * 60 for i in range(count)]  # 63 characters each


def _resolve(value: Any, template: dict[str, Any]) -> Any:
    """Replace intrinsics by the longest strings they can resolve to."""
    if isinstance(value, list):
        return [_resolve(v, template) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        target = template["Resources"].get(value["Ref"], {})
        if target.get("Type") == "AWS::SecretsManager::Secret":
            name = target["Properties"]["Name"]
            return ARN_HEAD.format(service="secretsmanager") + f"secret:{name}-AbCdEf"
        pseudo = {"AWS::Region": "us-isob-east-1", "AWS::Partition": "aws-iso-b", "AWS::AccountId": "1" * 12}
        return pseudo.get(value["Ref"], "x" * 64)
    if "Fn::GetAtt" in value:
        logical, _ = value["Fn::GetAtt"]
        kind = template["Resources"][logical]["Type"]
        if kind == "AWS::KMS::Key":
            return ARN_HEAD.format(service="kms") + "key/" + "k" * 36
        if kind == "AWS::Logs::LogGroup":  # CloudFormation names it <stack>-<logical id>-<12 random>
            return (
                ARN_HEAD.format(service="logs") + f"log-group:{LONGEST_STACK_NAME}-{logical}-RANDOMRANDOM:*"
            )
        if kind == "AWS::SQS::Queue":  # queue names are capped at 80 characters
            return ARN_HEAD.format(service="sqs") + "q" * 80
        raise AssertionError(f"unexpected GetAtt of {kind}")
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(_resolve(p, template)) for p in parts)
    return {k: _resolve(v, template) for k, v in value.items()}


def refresher_policy_size(template: dict[str, Any]) -> int:
    policy = template["Resources"][
        logical_id_by_path(template, "AWS::IAM::Policy", "RefresherRoleDefaultPolicy")
    ]
    document = _resolve(policy["Properties"]["PolicyDocument"], template)
    return len(json.dumps(document, separators=(",", ":")))  # IAM does not count whitespace


def worst_case_props(count: int) -> Callable[[Stack], ZohoTokenSyncProps]:
    """Longest names and prefix, in a VPC (whose ENI statement makes the policy longest)."""

    def props(stack: Stack) -> ZohoTokenSyncProps:
        vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
        connections = [Connection(n, "eu") for n in worst_case_names(count)]
        return ZohoTokenSyncProps(connections=connections, secret_prefix=PREFIX, vpc=vpc)

    return props


@pytest.fixture(scope="module")
def worst_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _, _, template = synth_sync(tmp_path_factory.mktemp("worst"), worst_case_props(MAX_CONNECTIONS))
    return template


def test_refresher_policy_of_the_maximum_fits_iams_limit(worst_case: dict[str, Any], tmp_path: Path) -> None:
    size = refresher_policy_size(worst_case)
    print(
        f"\nrefresher policy, {MAX_CONNECTIONS} worst-case connections: {size} of {IAM_ROLE_INLINE_POLICY_LIMIT}"
    )
    assert size <= IAM_ROLE_INLINE_POLICY_LIMIT
    # One more connection would not fit: the maximum is as high as it can be.
    assert size + 2 * WORST_CASE_ARN_LENGTH > IAM_ROLE_INLINE_POLICY_LIMIT


def test_documented_policy_arithmetic_matches_the_template(tmp_path: Path) -> None:
    _, _, template = synth_sync(tmp_path / "vpc", worst_case_props(1))
    single = refresher_policy_size(template)
    fixed = single - 2 * WORST_CASE_ARN_LENGTH
    print(f"\nfixed part of the refresher policy (worst case): {fixed}")
    assert fixed <= POLICY_FIXED_CHARS
    assert MAX_CONNECTIONS == (IAM_ROLE_INLINE_POLICY_LIMIT - POLICY_FIXED_CHARS) // (
        2 * WORST_CASE_ARN_LENGTH
    )
    _, _, plain = synth_sync(tmp_path / "plain", ZohoTokenSyncProps(connections=[Connection("crm-eu", "eu")]))
    assert len(resources(plain, "AWS::SecretsManager::Secret")) == 2
    fixed_resources = len(plain["Resources"]) - 2
    print(f"fixed resources of a deployment: {fixed_resources}")
    assert fixed_resources <= FIXED_RESOURCES
    assert FIXED_RESOURCES + 2 * MAX_CONNECTIONS < CFN_RESOURCES_PER_STACK


def test_maximum_fits_the_lambda_environment_and_stack_limits(worst_case: dict[str, Any]) -> None:
    function = worst_case["Resources"][logical_id_by_path(worst_case, "AWS::Lambda::Function", "Refresher")]
    env = function["Properties"]["Environment"]["Variables"]
    assert environment_size(env) < LAMBDA_ENVIRONMENT_LIMIT
    assert len(worst_case["Resources"]) < CFN_RESOURCES_PER_STACK


def test_one_connection_more_than_the_maximum_is_refused() -> None:
    too_many = [Connection(f"c{i}", "eu") for i in range(MAX_CONNECTIONS + 1)]
    with pytest.raises(ConfigurationError, match=f"at most {MAX_CONNECTIONS} per deployment"):
        synth_sync(Path("/nonexistent"), ZohoTokenSyncProps(connections=too_many))


def test_health_probes_that_overflow_the_environment_are_refused(tmp_path: Path) -> None:
    long_path = "/crm/v8/" + "x" * 190
    connections = [Connection(n, "eu", health_probe_path=long_path) for n in worst_case_names(20)]
    with pytest.raises(ConfigurationError, match=r"environment would be \d+ bytes, over Lambda's 4096"):
        synth_sync(tmp_path, ZohoTokenSyncProps(connections=connections))
