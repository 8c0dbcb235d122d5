"""Bootstrap failures after the exchange, which moto cannot be made to produce on its own.

``zoho-token`` runs in-process here (``main([...])``) so one AWS call can be made to fail or a concurrent
refresher can be slipped in between the exchange and the writes; Zoho and AWS are still the simulator
and the moto server.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambda_refresh.models import AccessTokenState, Credentials, Status
from lambda_refresh.refresh import Refresher, Settings
from lambda_refresh.store import SecretStore, StoreError
from lambda_refresh.zoho import ZohoAccountsClient
from tests import leakguard
from tests.e2e.harness import snapshot
from tests.support import create_deployed_secrets, read_state
from zoho_token import bootstrap as bootstrap_module
from zoho_token.cli import main


@pytest.fixture
def operator_env(aws, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ZOHO_ALLOW_LOCAL_ACCOUNTS", "true")
    monkeypatch.delenv("ZOHO_GRANT_CODE", raising=False)
    return monkeypatch


def run_bootstrap(
    zoho: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    client_id, client_secret = zoho.register_client()
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", client_secret)
    code = zoho.issue_grant_code(client_id)
    argv = [
        "bootstrap",
        "--connection",
        "crm-eu",
        "--dc",
        "eu",
        "--accounts-url",
        zoho.url,
        "--client-id",
        client_id,
    ]
    exit_code = main([*argv, "--code", code])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    issued = zoho.issued_secrets()
    assert not [s for s in issued if s in output], "a secret value was printed"
    leakguard.register(*issued)
    return exit_code, output


def test_failed_secret_creation_revokes_the_new_refresh_token(
    secretsmanager, zoho, operator_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(plan: Any, name: str, secret_string: str, description: str) -> str:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "CreateSecret")

    operator_env.setattr(bootstrap_module, "_create_secret", refuse)

    exit_code, output = run_bootstrap(zoho, operator_env, capsys)

    assert exit_code == 1
    assert "AccessDeniedException" in output
    assert "was revoked at Zoho" in output
    assert "unchanged" in output
    assert zoho.stats.revokes == 1
    assert not any(zoho.is_refresh_token_valid(t) for t in zoho.issued_secrets())
    assert snapshot(secretsmanager, "crm-eu") == {"credentials": None, "access-token": None}


def test_failed_access_token_write_after_the_credentials_is_consistent(
    secretsmanager, zoho, operator_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    create_deployed_secrets(secretsmanager, "crm-eu", "eu")
    token_before = snapshot(secretsmanager, "crm-eu")["access-token"]
    real_write = SecretStore.write_raw

    def failing_write(
        self: SecretStore, secret_name: str, secret_string: str, *, base_version_id: str | None
    ) -> str:
        if secret_name.endswith("/access-token"):
            raise StoreError(
                "writing failed with ThrottlingException",
                secret_name=secret_name,
                aws_code="ThrottlingException",
            )
        return real_write(self, secret_name, secret_string, base_version_id=base_version_id)

    operator_env.setattr(SecretStore, "write_raw", failing_write)

    exit_code, output = run_bootstrap(zoho, operator_env, capsys)

    assert exit_code == 1
    assert "consistent" in output
    assert "zoho-token refresh --connection crm-eu" in output
    assert snapshot(secretsmanager, "crm-eu")["access-token"] == token_before
    credentials = Credentials.from_secret_string(
        secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["SecretString"]
    )
    assert zoho.is_refresh_token_valid(credentials.refresh_token)  # stored, so not revoked

    operator_env.setattr(SecretStore, "write_raw", real_write)
    settings = Settings(connections=("crm-eu",), allow_local_accounts=True)
    result = Refresher(settings, SecretStore(secretsmanager)).refresh_connection("crm-eu")
    assert result.outcome.value == "refreshed"
    leakguard.register(read_state(secretsmanager, "crm-eu").access_token)


def test_token_from_new_credentials_wins_over_a_concurrent_refresher(
    secretsmanager, zoho, operator_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    create_deployed_secrets(secretsmanager, "crm-eu", "eu")
    store = SecretStore(secretsmanager)
    base = store.read_access_token("crm-eu")
    real_exchange = ZohoAccountsClient.exchange_grant_code

    def exchange_then_race(self: ZohoAccountsClient, client_id: str, client_secret: str, code: str) -> Any:
        grant = real_exchange(self, client_id, client_secret, code)
        # A refresher that read the same version writes first, with a token from the old credentials.
        stale = AccessTokenState(
            access_token="1000.stale.token.from.the.old.credentials",
            status=Status.OK,
            dc="eu",
            credentials_version="old-credentials-version",
        )
        store.write_access_token("crm-eu", stale, base=base)
        return grant

    operator_env.setattr(ZohoAccountsClient, "exchange_grant_code", exchange_then_race)

    exit_code, output = run_bootstrap(zoho, operator_env, capsys)

    assert exit_code == 0, output
    state = read_state(secretsmanager, "crm-eu")
    credentials_version = secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["VersionId"]
    assert state.credentials_version == credentials_version
    assert state.access_token is not None
    assert zoho.is_access_token_valid(state.access_token)
    previous = secretsmanager.get_secret_value(
        SecretId="zoho/crm-eu/access-token", VersionStage="AWSPREVIOUS"
    )
    assert AccessTokenState.from_secret_string(previous["SecretString"]).credentials_version == (
        "old-credentials-version"
    ), "the bootstrap must have written on top of the concurrent refresher's version"
