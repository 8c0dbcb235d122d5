"""``zoho-token status``, ``refresh`` and ``revoke`` end to end (console script, moto, simulator)."""

from __future__ import annotations

from datetime import UTC, datetime

from lambda_refresh.models import Status, fingerprint
from lambda_refresh.refresh import Refresher, Settings
from lambda_refresh.store import SecretStore
from tests import leakguard
from tests.e2e.harness import Cli, snapshot, validate
from tests.e2e.schemas import STATUS_SCHEMA
from tests.support import api_accepts, create_deployed_secrets, read_state, seed_connection

MOTO_CALLER = "arn:aws:sts::123456789012:user/moto"


def refresh_in_process(secretsmanager, name: str) -> None:
    """What the Lambda would have done by now: one refresh with the real refresher."""
    settings = Settings(connections=(name,), allow_local_accounts=True)
    result = Refresher(settings, SecretStore(secretsmanager)).refresh_connection(name)
    assert result.outcome.value == "refreshed", result


def test_status_json_follows_the_documented_schema_and_the_table_lists_every_connection(
    cli: Cli, secretsmanager, zoho
) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")
    refresh_in_process(secretsmanager, "crm-eu")
    create_deployed_secrets(secretsmanager, "books-us", "us")  # deployed, never bootstrapped
    secretsmanager.create_secret(Name="zoho/orphan/credentials", SecretString="{}")  # no access-token secret
    secretsmanager.create_secret(Name="other/crm-x/access-token", SecretString="{}")  # another prefix
    state = read_state(secretsmanager, "crm-eu")
    leakguard.register(state.access_token)

    result = cli("status", "--json")

    assert result.code == 1  # the orphan's access-token secret is missing: an AWS-side problem
    document = result.json()
    validate(document, STATUS_SCHEMA)
    rows = {row["connection"]: row for row in document["connections"]}
    assert list(rows) == ["books-us", "crm-eu", "orphan"]
    ok = rows["crm-eu"]
    assert ok["status"] == "ok"
    assert ok["dc"] == "eu"
    assert ok["token_fingerprint"] == fingerprint(state.access_token or "")
    assert 3500 < ok["expires_in_seconds"] <= 3600
    assert ok["credentials_version"] == seeded.credentials_version == ok["token_credentials_version"]
    assert ok["credentials_changed_at"] is not None
    assert ok["error"] is None
    assert rows["books-us"]["status"] == "pending"
    assert rows["books-us"]["expires_in_seconds"] is None
    assert rows["orphan"]["status"] == "missing"
    assert "zoho-token bootstrap" in rows["orphan"]["error"]["message"]

    table = cli("status", "--connection", "crm-eu")
    assert table.code == 0, table.output
    assert "crm-eu" in table.stdout
    assert "in 59 min" in table.stdout or "in 1 h 00 min" in table.stdout
    assert seeded.credentials_version[:8] in table.stdout


def test_refresh_uses_the_refresher_rules_and_reports_a_revoked_token(cli: Cli, secretsmanager, zoho) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")

    first = cli("refresh", "--connection", "crm-eu")  # pending: due
    assert first.code == 0, first.output
    assert "refreshed" in first.stdout
    fresh = cli("refresh", "--connection", "crm-eu", "--json")  # an hour left: left alone
    assert fresh.code == 0
    assert fresh.json()["outcome"] == "fresh"
    before = read_state(secretsmanager, "crm-eu")

    forced = cli("refresh", "--connection", "crm-eu", "--force")

    assert forced.code == 0, forced.output
    after = read_state(secretsmanager, "crm-eu")
    assert after.access_token != before.access_token
    assert fingerprint(after.access_token or "") in forced.stdout
    assert api_accepts(zoho, after)
    leakguard.register(before.access_token, after.access_token)

    zoho.revoke(seeded.refresh_token)  # e.g. the user removed the app under Connected Apps
    revoked = cli("refresh", "--connection", "crm-eu", "--force")

    assert revoked.code == 1
    assert "revoked" in revoked.stderr
    assert "bootstrap --connection crm-eu --replace" in revoked.stderr
    assert read_state(secretsmanager, "crm-eu").status is Status.REVOKED


def test_revoke_revokes_at_zoho_and_records_who(cli: Cli, secretsmanager, zoho) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")
    refresh_in_process(secretsmanager, "crm-eu")
    before = snapshot(secretsmanager, "crm-eu")
    token = read_state(secretsmanager, "crm-eu").access_token
    assert token is not None
    leakguard.register(token)

    assert snapshot(secretsmanager, "crm-eu") == before
    assert zoho.is_refresh_token_valid(seeded.refresh_token)

    # The contract's form, from a script (no terminal): no prompt; at a terminal it asks unless --yes.
    result = cli("revoke", "--connection", "crm-eu", "--json")

    assert result.code == 0, result.output
    assert not zoho.is_refresh_token_valid(seeded.refresh_token)
    assert not zoho.is_access_token_valid(token)
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.REVOKED
    assert state.access_token is None
    assert state.expires_at is None
    assert state.error is not None
    assert state.error.code == "revoked_by_operator"
    assert "bootstrap --connection crm-eu --replace" in state.error.message
    assert state.extra["revoked_by"] == MOTO_CALLER
    revoked_at = datetime.fromisoformat(state.extra["revoked_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - revoked_at).total_seconds()) < 60
    assert state.credentials_version == seeded.credentials_version  # parks the refresher
    assert result.json()["refresh_token_fingerprint"] == fingerprint(seeded.refresh_token)

    status = cli("status", "--connection", "crm-eu", "--json")
    row = status.json()["connections"][0]
    validate(status.json(), STATUS_SCHEMA)
    assert row["status"] == "revoked"
    assert row["revoked"] == {"by": MOTO_CALLER, "at": state.extra["revoked_at"]}
    assert row["token_fingerprint"] is None
