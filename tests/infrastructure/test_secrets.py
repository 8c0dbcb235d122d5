"""The two secrets per connection: exact names, the CMK, kept on delete, never overwritten by a deploy."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Duration

from cdk_app.connections import Connection
from cdk_app.construct import ZohoTokenSyncProps, access_token_initial_value, credentials_placeholder
from tests.infrastructure.conftest import (
    TEST_CONNECTIONS,
    Deployment,
    get_att,
    logical_id,
    logical_id_by_path,
    resources,
    synth_sync,
)

#: What CloudFormation holds as the credentials secret's value. CloudFormation re-sends SecretString
#: only when this template value changes, so it must never change: a changed placeholder would be
#: written over the real credentials by the next `cdk deploy`. Do not edit these literals.
GOLDEN_CREDENTIALS = {
    "crm-eu": '{"bootstrapped":false,"connection":"crm-eu","schema":1}',
    "books-us": '{"bootstrapped":false,"connection":"books-us","schema":1}',
}
GOLDEN_ACCESS_TOKEN = (
    '{"access_token":null,"api_domain":null,"credentials_version":null,"dc":null,"error":null,'
    '"expires_at":null,"refreshed_at":null,"schema":1,"scope":null,"status":"pending",'
    '"token_type":"Zoho-oauthtoken"}'
)


def test_two_secrets_per_connection_with_exact_names_the_cmk_and_retain(deployment: Deployment) -> None:
    t = deployment.json
    key = logical_id_by_path(t, "AWS::KMS::Key", "TokenSyncKey")
    secrets = resources(t, "AWS::SecretsManager::Secret")
    assert sorted(s["Properties"]["Name"] for s in secrets.values()) == sorted(
        f"zoho/{c.name}/{kind}" for c in TEST_CONNECTIONS for kind in ("credentials", "access-token")
    )
    for secret in secrets.values():
        assert secret["Properties"]["KmsKeyId"] == get_att(key)
        assert secret["DeletionPolicy"] == "Retain"
        assert secret["UpdateReplacePolicy"] == "Retain"
        assert "GenerateSecretString" not in secret["Properties"]
        assert {"Key": "zoho-token-sync:service", "Value": "zoho-token-sync-test"} in secret["Properties"][
            "Tags"
        ]
        assert "ReplicaRegions" not in secret["Properties"]
    # Secrets Manager's own rotation is not used (4 h minimum vs 1 h Zoho tokens).
    assert not resources(t, "AWS::SecretsManager::RotationSchedule")


def test_initial_values_follow_the_contract(deployment: Deployment) -> None:
    t = deployment.json
    for connection in TEST_CONNECTIONS:
        credentials = logical_id(t, "AWS::SecretsManager::Secret", Name=f"zoho/{connection.name}/credentials")
        token = logical_id(t, "AWS::SecretsManager::Secret", Name=f"zoho/{connection.name}/access-token")
        placeholder = json.loads(t["Resources"][credentials]["Properties"]["SecretString"])
        assert placeholder == {"schema": 1, "bootstrapped": False, "connection": connection.name}
        initial = json.loads(t["Resources"][token]["Properties"]["SecretString"])
        assert initial == {
            "schema": 1,
            "access_token": None,
            "token_type": "Zoho-oauthtoken",
            "api_domain": None,
            "dc": None,  # recorded by the bootstrap and the refresher, not the template
            "scope": None,
            "expires_at": None,
            "refreshed_at": None,
            "status": "pending",
            "error": None,
            "credentials_version": None,
        }


def test_placeholders_are_pinned_forever() -> None:
    for name, value in GOLDEN_CREDENTIALS.items():
        assert credentials_placeholder(name) == value
    assert access_token_initial_value(Connection("crm-eu", "eu")) == GOLDEN_ACCESS_TOKEN
    # Independent of the DC: correcting a DC in the config must not reset a live token to pending.
    assert access_token_initial_value(Connection("crm-eu", "us")) == GOLDEN_ACCESS_TOKEN


def test_a_redeploy_with_other_props_or_order_keeps_every_secret_value(tmp_path: Path) -> None:
    """Whatever else changes in a later deploy, the template value of each secret stays identical.

    CloudFormation only writes SecretString when its template value changes, so a bootstrapped
    credentials secret (and a refreshed access token) survive: DC corrections, reordering, other
    schedule, prefix-unrelated props, a new connection next to it, another email.
    """
    first = ZohoTokenSyncProps(connections=[Connection("crm-eu", "eu"), Connection("books-us", "us")])
    second = ZohoTokenSyncProps(
        connections=[Connection("books-us", "us"), Connection("new-one", "jp"), Connection("crm-eu", "eu")],
        schedule_interval=Duration.minutes(5),
        refresh_margin=Duration.minutes(20),
        alarm_email="someone-else@example.com",
        service_name="renamed-service",
        reserved_concurrency=None,
        token_budget=3,
    )
    dc_fixed = ZohoTokenSyncProps(connections=[Connection("crm-eu", "us"), Connection("books-us", "us")])

    def values(props: ZohoTokenSyncProps, where: str) -> dict[str, str]:
        _, _, template = synth_sync(tmp_path / where, props)
        return {
            s["Properties"]["Name"]: s["Properties"]["SecretString"]
            for s in resources(template, "AWS::SecretsManager::Secret").values()
        }

    a, b, c = values(first, "a"), values(second, "b"), values(dc_fixed, "c")
    for name in (
        "zoho/crm-eu/credentials",
        "zoho/books-us/credentials",
        "zoho/books-us/access-token",
        # A DC correction in the config keeps the live token too: the credentials decide the DC.
        "zoho/crm-eu/access-token",
    ):
        assert a[name] == b[name] == c[name]
    for name, golden in GOLDEN_CREDENTIALS.items():
        assert a[f"zoho/{name}/credentials"] == golden
