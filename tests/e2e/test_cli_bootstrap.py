"""``zoho-token bootstrap`` end to end: the console script in a subprocess, a moto server, Zoho simulators.

What matters most here: the grant code is spent only after every other check passed, a failure leaves
both secrets byte for byte as they were, and no secret value ever appears in the output.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from lambda_refresh.models import AccessTokenState, Credentials, Status, fingerprint
from tests import leakguard
from tests.e2e.harness import Cli, secret_json, snapshot, token_requests
from tests.support import api_accepts, create_deployed_secrets, read_state
from zoho_token.simulator import Fault


def bootstrap_args(name: str, sim: Any, client_id: str, *extra: str, dc: str | None = None) -> list[str]:
    return [
        "bootstrap",
        "--connection",
        name,
        "--dc",
        dc or sim.dc,
        "--accounts-url",
        sim.url,
        "--client-id",
        client_id,
        *extra,
    ]


def test_bootstrap_in_two_data_centers_into_deployed_and_into_new_secrets(
    cli: Cli, secretsmanager, aws, zoho, zoho_us
) -> None:
    # EU: the normal order — the deployment created placeholders; secret from env, code from --code.
    create_deployed_secrets(secretsmanager, "crm-eu", "eu")
    placeholder_version = secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["VersionId"]
    eu_id, eu_secret = zoho.register_client()
    eu_code = zoho.issue_grant_code(eu_id)

    eu = cli(
        *bootstrap_args("crm-eu", zoho, eu_id, "--code", eu_code, "--json"),
        env={"ZOHO_CLIENT_SECRET": eu_secret},
    )

    assert eu.code == 0, eu.stderr
    summary = eu.json()
    credentials_raw = secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")
    credentials = Credentials.from_secret_string(credentials_raw["SecretString"])
    assert set(secret_json(secretsmanager, "zoho/crm-eu/credentials")) == {
        "schema",
        "client_id",
        "client_secret",
        "refresh_token",
        "dc",
        "accounts_url",
        "api_domain",
        "scope",
        "issued_at",
    }
    assert (credentials.client_id, credentials.client_secret, credentials.dc) == (eu_id, eu_secret, "eu")
    assert credentials.accounts_url == zoho.url
    assert credentials.api_domain == zoho.url
    assert credentials.scope == "ZohoCRM.modules.ALL"
    assert zoho.is_refresh_token_valid(credentials.refresh_token)
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.OK
    assert state.error is None
    assert state.token_type == "Zoho-oauthtoken"
    assert state.dc == "eu"
    assert state.credentials_version == credentials_raw["VersionId"]
    assert state.refreshed_at is not None
    assert state.expires_at is not None
    assert 3500 < (state.expires_at - state.refreshed_at).total_seconds() <= 3600
    assert len(state.recent_mints) == 1
    assert api_accepts(zoho, state)
    assert summary["fingerprints"] == {
        "client_secret": fingerprint(eu_secret),
        "refresh_token": fingerprint(credentials.refresh_token),
        "access_token": fingerprint(state.access_token or ""),
    }
    assert summary["credentials_secret"]["action"] == "updated"
    # The deployment's placeholder is kept as the previous version, as put_secret_value does.
    stages = {
        v["VersionId"]: v["VersionStages"]
        for v in secretsmanager.list_secret_version_ids(SecretId="zoho/crm-eu/credentials")["Versions"]
    }
    assert stages[placeholder_version] == ["AWSPREVIOUS"]

    # US: no deployment; both secrets are created with the given KMS key. Secret and code via the prompts.
    key_arn = aws_kms_key(aws)
    us_id, us_secret = zoho_us.register_client()
    us_code = zoho_us.issue_grant_code(us_id, scope="ZohoBooks.fullaccess.all")

    us = cli(
        *bootstrap_args("books-us", zoho_us, us_id, "--kms-key-id", key_arn),
        stdin=f"{us_secret}\n{us_code}\n",
    )

    assert us.code == 0, us.stderr
    assert "Client secret (hidden" in us.stderr
    assert "Grant code:" in us.stderr
    assert "books-us bootstrapped" in us.stdout
    us_state = read_state(secretsmanager, "books-us")
    us_credentials = Credentials.from_secret_string(
        secretsmanager.get_secret_value(SecretId="zoho/books-us/credentials")["SecretString"]
    )
    assert us_credentials.dc == "us"
    assert us_credentials.scope == us_state.scope == "ZohoBooks.fullaccess.all"
    assert fingerprint(us_credentials.refresh_token) in us.stdout
    assert api_accepts(zoho_us, us_state)
    assert not api_accepts(zoho, us_state.with_changes(api_domain=zoho.url))  # tokens belong to one DC
    for suffix in ("credentials", "access-token"):
        described = secretsmanager.describe_secret(SecretId=f"zoho/books-us/{suffix}")
        assert described["KmsKeyId"] == key_arn
    leakguard.register(state.access_token, us_state.access_token)


def aws_kms_key(aws: Any) -> str:
    import boto3

    kms = boto3.client("kms", endpoint_url=aws.url, region_name="us-east-1")
    return str(kms.create_key(Description="zoho-token test key")["KeyMetadata"]["Arn"])


# ---------------------------------------------------------------------------------------------------------
# Failures: each leaves both secrets exactly as they were and says what to do.


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FAILURES = {
    # case: (deployed, exit code, expected phrases, whether the grant code is spent)
    "expired_code": (True, 1, ["invalid_code", "Generate a new one", "unchanged"], True),
    "used_code": (True, 1, ["invalid_code", "already used", "unchanged"], True),
    "wrong_secret": (False, 1, ["invalid_client_secret", "Client Secret", "grant code was not used"], False),
    "client_of_other_dc": (True, 1, ["invalid_client", "DC you asked for, DC 'eu'", "was not used"], False),
    "rate_limited": (True, 1, ["Access Denied", "10 minutes", "grant code was not used"], False),
    "refresh_token_cap": (True, 1, ["Access Denied", "20 refresh tokens", "unchanged"], True),
    "no_offline_access": (True, 1, ["no refresh token", "offline", "unchanged"], True),
    "aws_unreachable": (True, 1, ["could not reach AWS", "AWS_ENDPOINT_URL"], False),
    "already_bootstrapped": (
        True,
        2,
        ["already bootstrapped", "--replace", "21st", "grant code was not used"],
        False,
    ),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failed_bootstrap_leaves_both_secrets_unchanged(
    case: str, cli: Cli, secretsmanager, aws, zoho, zoho_us, zoho_clock
) -> None:
    from lambda_refresh.zoho import ZohoAccountsClient

    deployed, expected_code, phrases, code_spent = FAILURES[case]
    if deployed:
        create_deployed_secrets(secretsmanager, "crm-eu", "eu")
    client_id, client_secret = zoho.register_client()
    code = zoho.issue_grant_code(client_id)
    env = {"ZOHO_CLIENT_SECRET": client_secret}
    args = bootstrap_args("crm-eu", zoho, client_id, "--code", code)
    # Where the code belongs: (simulator, client id, right secret, code), to prove afterwards it still works.
    owner = (zoho, client_id, client_secret, code)

    if case == "expired_code":
        zoho_clock.advance(181)  # the default three minutes are over by the simulator's clock
    elif case == "used_code":
        grant = ZohoAccountsClient(zoho.url, allow_local=True).exchange_grant_code(
            client_id, client_secret, code
        )
        leakguard.register(grant.access_token, grant.refresh_token)
    elif case == "wrong_secret":
        env["ZOHO_CLIENT_SECRET"] = "0123456789abcdef0123456789abcdef0123456789"
        cli.watch(env["ZOHO_CLIENT_SECRET"])
    elif case == "client_of_other_dc":
        us_id, us_secret = zoho_us.register_client()
        us_code = zoho_us.issue_grant_code(us_id)
        env["ZOHO_CLIENT_SECRET"] = us_secret
        args = bootstrap_args("crm-eu", zoho, us_id, "--code", us_code)
        owner = (zoho_us, us_id, us_secret, us_code)
    elif case == "rate_limited":
        zoho.inject(Fault.RATE_LIMIT)
    elif case == "refresh_token_cap":
        zoho.settings.refresh_token_cap = 1
        zoho.settings.refresh_token_cap_mode = "deny"
        other = zoho.issue_grant_code(client_id)
        ZohoAccountsClient(zoho.url, allow_local=True).exchange_grant_code(client_id, client_secret, other)
    elif case == "no_offline_access":
        args = bootstrap_args(
            "crm-eu", zoho, client_id, "--code", zoho.issue_grant_code(client_id, offline=False)
        )
    elif case == "aws_unreachable":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{_closed_port()}"
    elif case == "already_bootstrapped":
        from tests.support import seed_connection

        seed_connection(secretsmanager, zoho, "crm-eu", deployed=False)
    before = snapshot(secretsmanager, "crm-eu")
    requests_before = token_requests(zoho, zoho_us)

    result = cli(*args, env=env)

    assert result.code == expected_code, result.output
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)
    assert result.stdout == ""
    assert snapshot(secretsmanager, "crm-eu") == before
    if case in ("aws_unreachable", "already_bootstrapped"):
        assert token_requests(zoho, zoho_us) == requests_before, "nothing may reach Zoho"
    if not code_spent:
        sim, owner_id, owner_secret, owner_code = owner
        grant = ZohoAccountsClient(sim.url, allow_local=True).exchange_grant_code(
            owner_id, owner_secret, owner_code
        )
        leakguard.register(grant.access_token, grant.refresh_token)


def test_bootstrap_secret_in_argv_is_refused_and_never_echoed(cli: Cli, secretsmanager, zoho) -> None:
    secret_value = "f3a9c2e1d4b5a6978812aabbccddeeff00112233"
    cli.watch(secret_value)
    create_deployed_secrets(secretsmanager, "crm-eu", "eu")
    before = snapshot(secretsmanager, "crm-eu")
    base = [
        "bootstrap",
        "--connection",
        "crm-eu",
        "--dc",
        "eu",
        "--client-id",
        "1000.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
    ]
    variants = [
        [*base, "--client-secret", secret_value],
        [*base, f"--client-secret={secret_value}"],
        [*base, "--client_secret", secret_value],
        [*base, f"--secret={secret_value}"],
        [*base, "--refresh-token", secret_value],
    ]
    for argv in variants:
        result = cli(*argv)
        assert result.code == 2, argv[-1:]
        assert "refusing --" in result.stderr
        assert "shell history" in result.stderr
        assert "ZOHO_CLIENT_SECRET" in result.stderr or "grant code" in result.stderr
    # Unknown options and stray arguments are not echoed either (argparse would quote them).
    for argv in ([*base, "--clientsecret2", secret_value], [*base, secret_value], ["bootstrp", secret_value]):
        result = cli(*argv)
        assert result.code == 2
        assert "not shown" in result.stderr
    assert snapshot(secretsmanager, "crm-eu") == before
    assert token_requests(zoho) == 0


def test_replace_keeps_the_previous_version_and_revoke_old_kills_the_old_token(
    cli: Cli, secretsmanager, zoho
) -> None:
    create_deployed_secrets(secretsmanager, "crm-eu", "eu")
    client_id, client_secret = zoho.register_client()
    env = {"ZOHO_CLIENT_SECRET": client_secret}

    def bootstrap(*extra: str) -> Credentials:
        result = cli(
            *bootstrap_args("crm-eu", zoho, client_id, *extra),
            env={**env, "ZOHO_GRANT_CODE": zoho.issue_grant_code(client_id)},
        )
        assert result.code == 0, result.output
        raw = secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["SecretString"]
        return Credentials.from_secret_string(raw)

    first = bootstrap()
    first_version = secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["VersionId"]

    # --replace without --revoke-old: works, warns about the cap, and the old token stays valid.
    replaced = cli(
        *bootstrap_args("crm-eu", zoho, client_id, "--replace"),
        env={**env, "ZOHO_GRANT_CODE": zoho.issue_grant_code(client_id)},
    )
    assert replaced.code == 0, replaced.output
    assert "stays valid at Zoho" in replaced.stderr
    assert "21st silently deletes the oldest" in replaced.stderr
    second = Credentials.from_secret_string(
        secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["SecretString"]
    )
    assert zoho.is_refresh_token_valid(first.refresh_token)
    assert (
        secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials", VersionStage="AWSPREVIOUS")[
            "VersionId"
        ]
        == first_version
    )

    # --replace --revoke-old: the token being replaced is revoked at Zoho once the new one is stored.
    second_state = read_state(secretsmanager, "crm-eu")
    third = bootstrap("--replace", "--revoke-old")

    assert not zoho.is_refresh_token_valid(second.refresh_token)
    assert zoho.is_refresh_token_valid(third.refresh_token)
    assert second_state.access_token is not None
    assert not zoho.is_access_token_valid(second_state.access_token)  # revoking kills its access tokens
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.OK
    assert (
        state.credentials_version
        == secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["VersionId"]
    )
    assert api_accepts(zoho, state)
    previous = AccessTokenState.from_secret_string(
        secretsmanager.get_secret_value(SecretId="zoho/crm-eu/access-token", VersionStage="AWSPREVIOUS")[
            "SecretString"
        ]
    )
    assert previous.access_token == second_state.access_token
    leakguard.register(state.access_token, second_state.access_token)
