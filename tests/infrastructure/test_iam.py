"""IAM, statement by statement: the refresher, the scheduler and the three grant methods."""

from __future__ import annotations

from typing import Any

from tests.infrastructure.conftest import (
    TEST_CONNECTIONS,
    Deployment,
    get_att,
    logical_id,
    logical_id_by_path,
    normalized,
    ref,
    region_endpoint,
    resources,
    statements,
)

PREFIX = "zoho/"


def secret_ids(template: dict[str, Any], kind: str) -> list[str]:
    return [
        logical_id(template, "AWS::SecretsManager::Secret", Name=f"{PREFIX}{c.name}/{kind}")
        for c in TEST_CONNECTIONS
    ]


def policy_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """All statements of all AWS::IAM::Policy resources attached to ``role_id`` (plus inline ones)."""
    found: list[dict[str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if ref(role_id) in policy["Properties"]["Roles"]:
            found.extend(statements(policy["Properties"]["PolicyDocument"]))
    for inline in template["Resources"][role_id]["Properties"].get("Policies", []):
        found.extend(statements(inline["PolicyDocument"]))
    return found


def allow(actions: list[str], resource: Any, condition: dict[str, Any] | None = None) -> tuple[Any, ...]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return normalized(statement)


VIA_SECRETS_MANAGER = {"StringEquals": {"kms:ViaService": region_endpoint("secretsmanager")}}


def test_refresher_policy_is_exactly_its_connections_secrets_key_logs_xray_and_failure_queue(
    deployment: Deployment,
) -> None:
    t = deployment.json
    role = logical_id_by_path(t, "AWS::IAM::Role", "RefresherRole")
    key = logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey")
    log_group = logical_id_by_path(t, "AWS::Logs::LogGroup", "TokenSyncLogGroup")
    queue = logical_id_by_path(t, "AWS::SQS::Queue", "FailedRunsQueue")
    expected = {
        allow(
            ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            [ref(i) for i in secret_ids(t, "credentials")],
        ),
        allow(
            ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            [ref(i) for i in secret_ids(t, "access-token")],
        ),
        allow(["kms:Decrypt", "kms:GenerateDataKey"], get_att(key), VIA_SECRETS_MANAGER),
        allow(["logs:CreateLogStream", "logs:PutLogEvents"], get_att(log_group)),
        # The only wildcard, acknowledged for cdk-nag: X-Ray has no resource-level permissions.
        allow(["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "*"),
        # The async on-failure destination (SqsDestination's grant).
        allow(["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"], get_att(queue)),
    }
    actual = [normalized(s) for s in policy_of_role(t, role)]
    assert sorted(actual) == sorted(expected)

    role_props = t["Resources"][role]["Properties"]
    assert "ManagedPolicyArns" not in role_props
    assert role_props["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]
    function = logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher")
    assert t["Resources"][function]["Properties"]["Role"] == get_att(role)


def test_refresher_may_not_write_credentials_nor_create_or_delete_secrets(deployment: Deployment) -> None:
    t = deployment.json
    role = logical_id_by_path(t, "AWS::IAM::Role", "RefresherRole")
    credentials = {str(ref(i)) for i in secret_ids(t, "credentials")}
    for statement in policy_of_role(t, role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a.endswith("*") for a in actions)
        assert not {"secretsmanager:CreateSecret", "secretsmanager:DeleteSecret"} & set(actions)
        resources_ = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if "secretsmanager:PutSecretValue" in actions:
            assert not credentials & {str(r) for r in resources_}


def test_scheduler_role_invokes_exactly_the_function_and_writes_exactly_its_dlq(
    deployment: Deployment,
) -> None:
    t = deployment.json
    role = logical_id_by_path(t, "AWS::IAM::Role", "SchedulerRole")
    function = logical_id_by_path(t, "AWS::Lambda::Function", "TokenSyncRefresher")
    dlq = logical_id_by_path(t, "AWS::SQS::Queue", "SchedulerDeadLetterQueue")
    assert sorted(normalized(s) for s in policy_of_role(t, role)) == sorted(
        [allow(["lambda:InvokeFunction"], get_att(function)), allow(["sqs:SendMessage"], get_att(dlq))]
    )
    trust = t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
        }
    ]


def test_grant_read_access_token_same_stack(deployment: Deployment) -> None:
    t = deployment.json
    role = logical_id_by_path(t, "AWS::IAM::Role", "SameStackReader")
    token = logical_id(t, "AWS::SecretsManager::Secret", Name="zoho/desk-in/access-token")
    key = logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey")
    assert sorted(normalized(s) for s in policy_of_role(t, role)) == sorted(
        [
            allow(["secretsmanager:GetSecretValue"], ref(token)),
            allow(
                ["kms:Decrypt"],
                get_att(key),
                {
                    "StringEquals": {
                        "kms:ViaService": region_endpoint("secretsmanager"),
                        "kms:EncryptionContext:SecretARN": ref(token),
                    }
                },
            ),
        ]
    )


def test_grant_operate_covers_the_cli_and_nothing_more(deployment: Deployment) -> None:
    t = deployment.json
    role = logical_id_by_path(t, "AWS::IAM::Role", "Operators")
    key = logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey")
    log_group = logical_id_by_path(t, "AWS::Logs::LogGroup", "TokenSyncLogGroup")
    all_secrets = [
        ref(i)
        for pair in zip(secret_ids(t, "credentials"), secret_ids(t, "access-token"), strict=True)
        for i in pair
    ]
    assert sorted(normalized(s) for s in policy_of_role(t, role)) == sorted(
        [
            allow(
                [
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetResourcePolicy",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:ListSecretVersionIds",
                    "secretsmanager:PutSecretValue",
                ],
                all_secrets,
            ),
            allow(["kms:Decrypt", "kms:GenerateDataKey"], get_att(key), VIA_SECRETS_MANAGER),
            allow(["logs:FilterLogEvents", "logs:GetLogEvents"], get_att(log_group)),
        ]
    )


def _imports_of(value: Any) -> list[str]:
    """``stack:output`` of the cross-stack references inside ``value``.

    With cdk.json's recommended flags CDK reads another stack's value with ``Fn::GetStackOutput`` (no
    export, so the producing stack is never locked by its consumers); ``Fn::ImportValue`` otherwise.
    """
    if isinstance(value, dict):
        if "Fn::GetStackOutput" in value:
            output = value["Fn::GetStackOutput"]
            return [f"{output['StackName']}:{output['OutputName']}"]
        if "Fn::ImportValue" in value:
            return [str(value["Fn::ImportValue"])]
        return [name for v in value.values() for name in _imports_of(v)]
    if isinstance(value, list):
        return [name for v in value for name in _imports_of(v)]
    return []


def test_cross_stack_grant_needs_only_exports_of_the_token_stack(deployment: Deployment) -> None:
    """The sample consumer lives in another stack; its grants land in its own role, no cycle."""
    t, c = deployment.json, deployment.consumer_json
    role = logical_id_by_path(c, "AWS::IAM::Role", "Role")
    function = logical_id_by_path(c, "AWS::Lambda::Function", "Function")
    stmts = policy_of_role(c, role)
    token_stack = deployment.stack.stack_name
    by_action = {
        tuple(sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])): s for s in stmts
    }
    assert set(by_action) == {
        ("logs:CreateLogStream", "logs:PutLogEvents"),
        ("secretsmanager:GetSecretValue",),
        ("kms:Decrypt",),
        ("lambda:InvokeFunction",),
    }
    read = by_action[("secretsmanager:GetSecretValue",)]
    decrypt = by_action[("kms:Decrypt",)]
    invoke = by_action[("lambda:InvokeFunction",)]
    for statement in (read, decrypt, invoke):
        imports = _imports_of(statement["Resource"])
        assert len(imports) == 1
        assert imports[0].startswith(f"{token_stack}:")
    token_secret = logical_id(t, "AWS::SecretsManager::Secret", Name="zoho/books-us/access-token")
    assert token_secret in _imports_of(read["Resource"])[0]
    assert _imports_of(decrypt["Condition"]) == _imports_of(read["Resource"])  # SecretARN context
    assert "Credentials" not in str(stmts)
    env = c["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert env["ZOHO_CONNECTION"] == "books-us"
    assert env["ZOHO_SECRET_PREFIX"] == "zoho/"

    # The token stack knows nothing of the consumer; the dependency goes one way only.
    assert not _imports_of(t)
    assembly = deployment.app.synth()
    deps = {s.stack_name: {d.id for d in s.dependencies} for s in assembly.stacks}
    assert token_stack in deps[deployment.consumer_stack.stack_name]
    assert deployment.consumer_stack.stack_name not in deps[token_stack]


def test_no_secret_or_key_resource_policy_widens_access(deployment: Deployment) -> None:
    t = deployment.json
    assert not resources(t, "AWS::SecretsManager::ResourcePolicy")
    assert not resources(t, "AWS::Lambda::Permission")


def test_configured_operator_roles_get_exactly_grant_operate(deployment: Deployment) -> None:
    t = deployment.json
    reference = sorted(
        normalized(s) for s in policy_of_role(t, logical_id_by_path(t, "AWS::IAM::Role", "Operators"))
    )
    attached = {
        str(policy["Properties"]["Roles"]): sorted(
            normalized(s) for s in statements(policy["Properties"]["PolicyDocument"])
        )
        for policy in resources(t, "AWS::IAM::Policy").values()
        if all(isinstance(r, str) for r in policy["Properties"]["Roles"])  # existing roles, by name
    }
    listing = allow(["secretsmanager:ListSecrets"], "*")  # names only; acknowledged (IAM5) per role
    expected = sorted([*reference, listing])
    assert attached == {"['zoho-operators']": expected, "['zoho-admins']": expected}
