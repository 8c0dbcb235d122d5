"""The real handler against a moto server and the Zoho simulator over real HTTP.

Time is the simulator's clock, shared with the refresher through ``service.reset(clock=...)``, so
"an hour later" costs nothing. Every test ends with the leak guard scanning what it printed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambda_refresh import service
from lambda_refresh.handler import lambda_handler
from lambda_refresh.models import Credentials, RefreshRequest, Status, sha256_hex
from tests import leakguard
from tests.support import (
    access_token_versions,
    api_accepts,
    create_deployed_secrets,
    read_state,
    seed_connection,
)
from zoho_token.local import LocalLambdaContext
from zoho_token.simulator import Fault

Invoke = Callable[..., dict[str, Any]]


@pytest.fixture
def invoke(aws, zoho_clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Configure the function's environment for ``names`` and return an invoker of the real handler."""

    def configure_and_invoke(
        event: dict[str, Any] | None = None, *, names: str = "crm-eu", **env: str
    ) -> dict[str, Any]:
        monkeypatch.setenv("ZOHO_CONNECTIONS", names)
        monkeypatch.setenv("ZOHO_ALLOW_LOCAL_ACCOUNTS", "true")
        monkeypatch.setenv("ZOHO_HTTP_TIMEOUT_SECONDS", "1")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        service.reset(clock=lambda: datetime.fromtimestamp(zoho_clock(), UTC))
        response: dict[str, Any] = lambda_handler(event if event is not None else {}, LocalLambdaContext())
        json.dumps(response)  # the answer must be JSON-serialisable as Lambda returns it
        return response

    yield configure_and_invoke
    service.reset()


def outcome(response: dict[str, Any], name: str = "crm-eu") -> dict[str, Any]:
    return next(r for r in response["results"] if r["connection"] == name)


def refresh_calls(sim: Any) -> int:
    return int(sim.stats.token_requests["refresh_token"])


# ---------------------------------------------------------------------------------------------------------


def test_first_refresh_from_pending_produces_a_token_the_api_accepts(secretsmanager, zoho, invoke) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")

    response = invoke()

    result = outcome(response)
    assert result["outcome"] == "refreshed"
    assert result["error"] is None
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.OK
    assert state.credentials_version == seeded.credentials_version
    assert state.token_type == "Zoho-oauthtoken"
    assert state.dc == "eu"
    assert state.api_domain == zoho.url
    assert state.expires_at == datetime.fromtimestamp(zoho.clock(), UTC).replace(microsecond=0) + timedelta(
        hours=1
    )
    assert result["expires_at"] == state.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api_accepts(zoho, state)
    leakguard.register(state.access_token)


def test_fresh_token_is_left_alone_without_reading_credentials(
    secretsmanager, zoho, zoho_clock, invoke
) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    versions = access_token_versions(secretsmanager, "crm-eu")
    calls = refresh_calls(zoho)
    zoho_clock.advance(60 * 40)  # 20 minutes left: more than the 15-minute margin

    result = outcome(invoke())

    assert result["outcome"] == "fresh"
    assert refresh_calls(zoho) == calls
    assert access_token_versions(secretsmanager, "crm-eu") == versions


def test_token_within_the_margin_is_refreshed(secretsmanager, zoho, zoho_clock, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    first = read_state(secretsmanager, "crm-eu")
    zoho_clock.advance(3600 - 900 + 1)

    assert outcome(invoke())["outcome"] == "refreshed"

    second = read_state(secretsmanager, "crm-eu")
    assert second.access_token != first.access_token
    assert second.expires_at is not None
    assert first.expires_at is not None
    assert second.expires_at > first.expires_at
    assert api_accepts(zoho, second)


def test_margin_is_configurable(secretsmanager, zoho, zoho_clock, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    zoho_clock.advance(3600 - 1700)
    assert outcome(invoke(REFRESH_MARGIN_SECONDS="1800"))["outcome"] == "refreshed"


@pytest.mark.parametrize(
    ("fault", "status", "outcome_name", "code"),
    [
        (Fault.HTML_503, Status.FAILING, "failed", "zoho_unavailable"),
        (Fault.HTTP_500, Status.FAILING, "failed", "zoho_unavailable"),
        (Fault.MALFORMED_JSON, Status.FAILING, "failed", "malformed_response"),
        (Fault.MISSING_ACCESS_TOKEN, Status.FAILING, "failed", "malformed_response"),
        (Fault.CONNECTION_RESET, Status.FAILING, "failed", "connection_error"),
        (Fault.UNKNOWN_ERROR, Status.FAILING, "failed", "unknown_error"),
        (Fault.RATE_LIMIT, Status.FAILING, "failed", "rate_limited"),
        (Fault.RATE_LIMIT_400, Status.FAILING, "failed", "rate_limited"),
        (Fault.INVALID_CODE, Status.REVOKED, "revoked", "invalid_code"),
        (Fault.INVALID_CLIENT, Status.MISCONFIGURED, "misconfigured", "invalid_client"),
    ],
)
def test_each_error_class_keeps_the_token_and_sets_status(
    secretsmanager, zoho, zoho_clock, invoke, fault, status, outcome_name, code
) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    good = read_state(secretsmanager, "crm-eu")
    zoho_clock.advance(3600 - 600)
    zoho.inject(fault, count=None)

    result = outcome(invoke())

    assert result["outcome"] == outcome_name
    assert result["error"]["code"] == code
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is status
    assert state.error is not None
    assert state.error.code == code
    assert state.access_token == good.access_token
    assert state.expires_at == good.expires_at
    assert api_accepts(zoho, state)  # the last good token still works
    # Transient failures retry once inside the call; the others are final at once.
    expected_calls = 2 if status is Status.FAILING and code != "rate_limited" else 1
    assert zoho.stats.faults_served == expected_calls


def test_timeout_is_transient_and_bounded(secretsmanager, zoho, zoho_clock, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    zoho_clock.advance(3600 - 600)
    zoho.settings.hang_seconds = 1.5
    zoho.inject(Fault.TIMEOUT, count=None)

    result = outcome(invoke())

    assert result["outcome"] == "failed"
    assert result["error"]["code"] == "timeout"
    assert zoho.stats.faults_served == 2


def test_a_long_outage_writes_the_status_once(secretsmanager, zoho, zoho_clock, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    zoho_clock.advance(3600 - 600)
    zoho.inject(Fault.HTML_503, count=None)
    versions = access_token_versions(secretsmanager, "crm-eu")

    for _ in range(4):
        assert outcome(invoke())["outcome"] == "failed"
        zoho_clock.advance(120)

    assert access_token_versions(secretsmanager, "crm-eu") == versions + 1
    state = read_state(secretsmanager, "crm-eu")
    assert state.error is not None
    first_seen = datetime.fromtimestamp(zoho_clock() - 4 * 120, UTC).replace(microsecond=0)
    assert state.error.since == first_seen

    zoho.clear_faults()
    assert outcome(invoke())["outcome"] == "refreshed"
    recovered = read_state(secretsmanager, "crm-eu")
    assert recovered.status is Status.OK
    assert recovered.error is None


def test_rate_limit_backs_off_ten_minutes(secretsmanager, zoho, zoho_clock, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    zoho_clock.advance(3600 - 600)
    zoho.inject(Fault.RATE_LIMIT, count=None)
    assert outcome(invoke())["error"]["code"] == "rate_limited"
    calls = zoho.stats.faults_served

    for _ in range(4):
        zoho_clock.advance(120)
        result = outcome(invoke())
        assert result["outcome"] == "skipped"
        assert result["error"]["code"] == "rate_limited"
    assert zoho.stats.faults_served == calls  # nothing sent during the back-off

    zoho.clear_faults()
    zoho_clock.advance(120)  # exactly 10 minutes after the refusal: the next tick may try again
    assert outcome(invoke())["outcome"] == "refreshed"


def test_revoked_is_parked_until_a_new_bootstrap_then_recovers(
    secretsmanager, zoho, zoho_clock, invoke
) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    zoho.revoke(seeded.refresh_token)
    zoho_clock.advance(3600 - 600)

    assert outcome(invoke())["outcome"] == "revoked"
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.REVOKED
    assert state.credentials_version == seeded.credentials_version
    calls = refresh_calls(zoho)
    for _ in range(3):
        zoho_clock.advance(600)
        assert outcome(invoke())["outcome"] == "revoked"
    assert refresh_calls(zoho) == calls  # parked: Zoho is not asked again with a dead token

    # The operator bootstraps again: a new refresh token in a new credentials version.
    code = zoho.issue_grant_code(seeded.client_id)
    from lambda_refresh.zoho import ZohoAccountsClient

    grant = ZohoAccountsClient(zoho.url, allow_local=True).exchange_grant_code(
        seeded.client_id, seeded.client_secret, code
    )
    assert grant.refresh_token is not None
    leakguard.register(grant.refresh_token, grant.access_token, code)
    old = Credentials.from_secret_string(
        secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["SecretString"]
    )
    new = Credentials(**{**old.__dict__, "refresh_token": grant.refresh_token})
    secretsmanager.put_secret_value(SecretId="zoho/crm-eu/credentials", SecretString=new.to_secret_string())

    assert outcome(invoke())["outcome"] == "refreshed"
    recovered = read_state(secretsmanager, "crm-eu")
    assert recovered.status is Status.OK
    assert api_accepts(zoho, recovered)


def test_one_connection_failing_does_not_stop_the_others(secretsmanager, zoho, zoho_us, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    seed_connection(secretsmanager, zoho_us, "books-us", dc="us")
    revoked = seed_connection(secretsmanager, zoho, "desk-eu")
    zoho.revoke(revoked.refresh_token)
    create_deployed_secrets(secretsmanager, "not-bootstrapped", "eu")
    # "missing" has no secrets at all: a deployment/config mistake.

    response = invoke(names="crm-eu,books-us,desk-eu,missing,not-bootstrapped")

    outcomes = {r["connection"]: r["outcome"] for r in response["results"]}
    assert outcomes == {
        "crm-eu": "refreshed",
        "books-us": "refreshed",
        "desk-eu": "revoked",
        "missing": "misconfigured",
        "not-bootstrapped": "pending",
    }
    missing = outcome(response, "missing")
    assert "zoho/missing/access-token" in missing["error"]["message"]
    assert (
        "zoho-token bootstrap --connection not-bootstrapped"
        in outcome(response, "not-bootstrapped")["error"]["message"]
    )
    assert api_accepts(zoho_us, read_state(secretsmanager, "books-us"))
    # A DC's client is useless at another DC's server: the US token came from the US simulator only.
    assert refresh_calls(zoho_us) == 1


def test_missing_credentials_secret_is_misconfigured_and_named(secretsmanager, zoho, invoke) -> None:
    secretsmanager.create_secret(
        Name="zoho/crm-eu/access-token", SecretString='{"schema":1,"status":"pending"}'
    )
    result = outcome(invoke())
    assert result["outcome"] == "misconfigured"
    assert "zoho/crm-eu/credentials" in result["error"]["message"]
    assert read_state(secretsmanager, "crm-eu").status is Status.MISCONFIGURED


def test_allow_list_refusal_sends_nothing(secretsmanager, zoho, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    before = sum(zoho.stats.token_requests.values())

    result = outcome(invoke(ZOHO_ALLOW_LOCAL_ACCOUNTS="false"))

    assert result["outcome"] == "misconfigured"
    assert result["error"]["code"] == "accounts_url_not_allowed"
    assert sum(zoho.stats.token_requests.values()) == before


@pytest.mark.parametrize(
    "url",
    ["https://accounts.zoho.eu@127.0.0.1", "https://accounts.zoho.eu.evil.test", "http://accounts.zoho.eu"],
)
def test_hostile_accounts_url_in_credentials_is_refused(secretsmanager, zoho, invoke, url) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    creds = Credentials.from_secret_string(
        secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["SecretString"]
    )
    bad = Credentials(**{**creds.__dict__, "accounts_url": url})
    secretsmanager.put_secret_value(SecretId="zoho/crm-eu/credentials", SecretString=bad.to_secret_string())
    assert outcome(invoke())["error"]["code"] == "accounts_url_not_allowed"


def test_dc_mismatch_is_misconfigured(secretsmanager, zoho, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    creds = Credentials.from_secret_string(
        secretsmanager.get_secret_value(SecretId="zoho/crm-eu/credentials")["SecretString"]
    )
    bad = Credentials(**{**creds.__dict__, "dc": "us", "accounts_url": "https://accounts.zoho.eu"})
    secretsmanager.put_secret_value(SecretId="zoho/crm-eu/credentials", SecretString=bad.to_secret_string())
    result = outcome(invoke())
    assert result["outcome"] == "misconfigured"
    assert "does not match" in result["error"]["message"]


def test_forced_refresh_respects_the_budget(secretsmanager, zoho, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    results = [outcome(invoke({"connection": "crm-eu", "force": True}))["outcome"] for _ in range(7)]

    assert results == ["refreshed"] * 5 + ["skipped"] * 2
    refused = outcome(invoke({"connection": "crm-eu", "force": True}))
    assert refused["error"]["code"] == "budget_exhausted"
    assert "5 of Zoho's 10" in refused["error"]["message"]
    assert refresh_calls(zoho) == 5


def test_budget_holds_across_cold_starts_and_frees_after_the_window(
    secretsmanager, zoho, zoho_clock, invoke
) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    for _ in range(3):
        invoke({"connection": "crm-eu", "force": True}, ZOHO_TOKEN_BUDGET="3")
    service.reset()  # a cold start forgets everything in memory; the budget lives in the secret
    assert (
        outcome(invoke({"connection": "crm-eu", "force": True}, ZOHO_TOKEN_BUDGET="3"))["outcome"]
        == "skipped"
    )
    zoho_clock.advance(601)
    assert (
        outcome(invoke({"connection": "crm-eu", "force": True}, ZOHO_TOKEN_BUDGET="3"))["outcome"]
        == "refreshed"
    )


def test_stampede_of_invalid_token_reports_causes_one_refresh(secretsmanager, zoho, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    stale = read_state(secretsmanager, "crm-eu")
    assert stale.access_token is not None
    event = {"connection": "crm-eu", "force": True, "invalid_token_sha256": sha256_hex(stale.access_token)}
    calls = refresh_calls(zoho)

    outcomes = [outcome(invoke(event))["outcome"] for _ in range(6)]

    assert outcomes == ["refreshed"] + ["fresh"] * 5
    assert refresh_calls(zoho) == calls + 1


def test_concurrent_invocations_keep_a_working_token(secretsmanager, zoho, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()  # configure env and the refresher once
    refresher = service.get_refresher()
    barrier = threading.Barrier(4)
    results: list[str] = []

    def run() -> None:
        barrier.wait()
        r = refresher.refresh_connection("crm-eu", force=True)
        results.append(r.outcome.value)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert "refreshed" in results
    # Losers see the winner's token ("fresh") or its claim ("skipped": refresh in progress).
    assert set(results) <= {"refreshed", "fresh", "skipped"}
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.OK
    assert api_accepts(zoho, state)


def test_legacy_millisecond_expiry_is_normalised(secretsmanager, zoho, invoke) -> None:
    zoho.settings.legacy_expiry_format = True
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    state = read_state(secretsmanager, "crm-eu")
    assert state.expires_at is not None
    lifetime = state.expires_at - datetime.fromtimestamp(zoho.clock(), UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)


def test_absurd_expiry_is_clamped_to_an_hour(secretsmanager, zoho, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    zoho.inject(Fault.ABSURD_EXPIRES_IN)
    assert outcome(invoke())["outcome"] == "refreshed"
    state = read_state(secretsmanager, "crm-eu")
    assert state.expires_at is not None
    assert state.expires_at - datetime.fromtimestamp(zoho.clock(), UTC) <= timedelta(hours=1)


def test_invalid_event_is_answered_not_raised(aws, invoke) -> None:
    response = invoke({"connection": "Not A Name!"})
    assert response["results"] == []
    assert response["error"]["code"] == "invalid_event"


def test_unknown_connection_is_refused(secretsmanager, zoho, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    result = outcome(invoke({"connection": "other"}), "other")
    assert result["outcome"] == "misconfigured"
    assert "ZOHO_CONNECTIONS" in result["error"]["message"]


def test_no_secret_reaches_logs_metrics_or_answers_at_debug(
    secretsmanager, zoho, zoho_clock, invoke, capsys, caplog
) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")
    response = invoke()
    zoho_clock.advance(3000)
    zoho.inject(Fault.INVALID_CLIENT)
    response2 = invoke()
    state = read_state(secretsmanager, "crm-eu")
    assert state.access_token is not None

    printed = capsys.readouterr()
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    everything = printed.out + printed.err + logged + json.dumps(response) + json.dumps(response2)
    assert "RefreshSucceeded" in printed.out  # the EMF metrics really were printed and scanned
    for value in (seeded.client_secret, seeded.refresh_token, state.access_token):
        assert value not in everything
    # and botocore, which logs SecretString at DEBUG, stayed quiet although the root logger is at DEBUG
    assert not [r for r in caplog.records if r.name.startswith("botocore") and r.levelname == "DEBUG"]


PROBE = '{"crm-eu": "/crm/v8/users?type=CurrentUser"}'


def test_health_probe_catches_a_revocation_before_consumers_do(
    secretsmanager, zoho, zoho_clock, invoke, capsys
) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")
    assert outcome(invoke(ZOHO_HEALTH_PROBES=PROBE))["outcome"] == "refreshed"
    api_calls = zoho.stats.api_calls
    assert api_calls == 1  # the new token was probed once
    capsys.readouterr()

    zoho.revoke(seeded.refresh_token)  # e.g. the user removed the app under Connected Apps
    zoho_clock.advance(3601 - 900 - 60)  # token still "fresh" by its expiry, and an hour since the probe
    result = outcome(invoke(ZOHO_HEALTH_PROBES=PROBE))

    assert result["outcome"] == "revoked"
    assert read_state(secretsmanager, "crm-eu").status is Status.REVOKED
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    fleet = next(m for m in emf if "HealthProbeFailed" in m)
    assert fleet["HealthProbeFailed"] == [1.0]
    assert fleet["ConnectionsNeedingAction"] == [1.0]


def test_health_probe_checks_a_fresh_token_once_at_half_life(
    secretsmanager, zoho, zoho_clock, invoke
) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke(ZOHO_HEALTH_PROBES=PROBE)
    assert zoho.stats.api_calls == 1  # the new token
    warm = service.get_refresher()
    calls = []
    for _ in range(4):  # ticks at 10, 20, 30, 40 minutes of the token's life, in a warm container
        zoho_clock.advance(600)
        warm.refresh_connection("crm-eu")
        calls.append(zoho.stats.api_calls)
    assert calls == [1, 1, 2, 2]  # once it is 30 minutes old, not again


def test_probe_replaces_a_token_evicted_by_someone_else(secretsmanager, zoho, zoho_clock, invoke) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")
    invoke(ZOHO_HEALTH_PROBES=PROBE)
    stored = read_state(secretsmanager, "crm-eu")
    # Another system mints tokens from the same refresh token: beyond the cap of live tokens (15 at
    # Zoho, 3 here to keep the test short) Zoho silently drops our oldest one.
    from lambda_refresh.zoho import ZohoAccountsClient

    zoho.settings.active_token_cap = 3
    other = ZohoAccountsClient(zoho.url, allow_local=True)
    for _ in range(3):
        zoho_clock.advance(61)
        grant = other.refresh(seeded.client_id, seeded.client_secret, seeded.refresh_token)
        leakguard.register(grant.access_token)
    assert stored.access_token is not None
    assert not zoho.is_access_token_valid(stored.access_token)
    zoho_clock.advance(1800)  # the stored token is now old enough for its mid-life probe

    result = outcome(invoke(ZOHO_HEALTH_PROBES=PROBE))

    assert result["outcome"] == "refreshed"
    assert api_accepts(zoho, read_state(secretsmanager, "crm-eu"))


def test_forced_refreshes_wait_for_the_schedule_while_zoho_fails(
    secretsmanager, zoho, zoho_clock, invoke
) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    stale = read_state(secretsmanager, "crm-eu")
    assert stale.access_token is not None
    zoho_clock.advance(3600 - 600)
    zoho.inject(Fault.RATE_LIMIT, count=None)
    assert outcome(invoke())["error"]["code"] == "rate_limited"
    zoho_clock.advance(660)  # the back-off is over, but the connection is still failing
    calls = zoho.stats.faults_served

    forced = [
        {"connection": "crm-eu", "force": True},
        {"connection": "crm-eu", "invalid_token_sha256": sha256_hex(stale.access_token)},
    ]
    for event in forced * 3:
        result = outcome(invoke(event))
        assert result["outcome"] == "skipped"
        assert result["error"]["code"] == "refresh_failing"
    assert zoho.stats.faults_served == calls  # only the schedule may call a failing Zoho


def test_flapping_transient_errors_write_once(secretsmanager, zoho, zoho_clock, invoke) -> None:
    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    zoho_clock.advance(3600 - 600)
    versions = access_token_versions(secretsmanager, "crm-eu")
    for fault in (Fault.HTML_503, Fault.MALFORMED_JSON, Fault.HTTP_500, Fault.CONNECTION_RESET):
        zoho.clear_faults()
        zoho.inject(fault, count=None)
        assert outcome(invoke())["outcome"] == "failed"
        zoho_clock.advance(60)
    assert access_token_versions(secretsmanager, "crm-eu") == versions + 1
    error = read_state(secretsmanager, "crm-eu").error
    assert error is not None
    assert error.code == "zoho_unavailable"  # the incident's first code


def test_a_refresh_never_undoes_an_operator_revoke(secretsmanager, zoho, zoho_clock, invoke) -> None:
    """The operator's revoke lands while a scheduled refresh is waiting on Zoho: the refresh loses."""
    from lambda_refresh.store import SecretStore

    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    zoho_clock.advance(3600 - 600)
    refresher = service.get_refresher()
    operator = SecretStore(secretsmanager)
    revoked_once = False

    def operator_revokes_first(**_kwargs: Any) -> None:
        nonlocal revoked_once
        if not revoked_once:
            revoked_once = True
            current = operator.read_access_token("crm-eu")
            operator.write_access_token(
                "crm-eu",
                current.value.with_changes(status=Status.REVOKED, access_token=None, expires_at=None),
                base=current,
            )

    client = refresher.store._client
    client.meta.events.register("before-call.secrets-manager.PutSecretValue", operator_revokes_first)
    try:
        result = refresher.refresh_connection("crm-eu")
    finally:
        client.meta.events.unregister("before-call.secrets-manager.PutSecretValue", operator_revokes_first)

    assert revoked_once
    assert result.outcome.value == "revoked"
    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.REVOKED
    assert state.access_token is None


def test_stampede_across_refresher_instances_makes_one_zoho_call(secretsmanager, zoho, invoke) -> None:
    """Several refresher instances (concurrency > 1, or the CLI) get the same invalid-token report."""
    from lambda_refresh.refresh import Refresher
    from lambda_refresh.store import SecretStore

    seed_connection(secretsmanager, zoho, "crm-eu")
    invoke()
    stale = read_state(secretsmanager, "crm-eu")
    assert stale.access_token is not None
    digest = sha256_hex(stale.access_token)
    settings = service.get_refresher().settings
    instances = [Refresher(settings, SecretStore(boto3_client())) for _ in range(6)]
    calls = refresh_calls(zoho)
    barrier = threading.Barrier(len(instances))
    outcomes: list[str] = []

    def report(refresher: Refresher) -> None:
        barrier.wait()
        outcomes.append(refresher.refresh_connection("crm-eu", invalid_token_sha256=digest).outcome.value)

    threads = [threading.Thread(target=report, args=(r,)) for r in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert refresh_calls(zoho) == calls + 1
    assert outcomes.count("refreshed") == 1
    assert set(outcomes) <= {"refreshed", "skipped", "fresh"}
    state = read_state(secretsmanager, "crm-eu")
    assert api_accepts(zoho, state)
    assert len(state.recent_mints) == 2  # the first refresh and the claimed forced one, nothing lost


def boto3_client() -> Any:
    import boto3

    return boto3.client("secretsmanager")


def test_a_probe_that_keeps_rejecting_does_not_refresh_every_tick(
    secretsmanager, zoho, zoho_us, zoho_clock, invoke, capsys
) -> None:
    # Tokens come back with another DC's API domain, which rejects them: a misconfiguration.
    zoho.settings.api_domain = zoho_us.url
    seed_connection(secretsmanager, zoho, "crm-eu")
    first = outcome(invoke(ZOHO_HEALTH_PROBES=PROBE))
    assert first["outcome"] == "refreshed"
    versions = access_token_versions(secretsmanager, "crm-eu")
    calls = refresh_calls(zoho)

    for _ in range(12):  # two hours of ticks
        zoho_clock.advance(600)
        invoke(ZOHO_HEALTH_PROBES=PROBE)

    state = read_state(secretsmanager, "crm-eu")
    assert state.status is Status.OK  # the token is what Zoho issued; the error tells a human
    assert state.error is not None
    assert state.error.code == "token_rejected_by_api"
    assert refresh_calls(zoho) - calls <= 6  # hourly probe retries plus the normal cadence, not 12
    assert access_token_versions(secretsmanager, "crm-eu") - versions <= 12
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("HealthProbeFailed") == [1.0] for m in emf)


def test_parked_and_unbootstrapped_connections_read_no_credentials_value(
    secretsmanager, zoho, zoho_clock, invoke
) -> None:
    seeded = seed_connection(secretsmanager, zoho, "crm-eu")
    create_deployed_secrets(secretsmanager, "waiting", "eu")
    invoke(names="crm-eu,waiting")
    zoho.revoke(seeded.refresh_token)
    zoho_clock.advance(3000)
    invoke(names="crm-eu,waiting")  # crm-eu learns it is revoked; "waiting" is still a placeholder
    refresher = service.get_refresher()
    reads: list[str] = []

    def count(params: dict[str, Any], **_kwargs: Any) -> None:
        reads.append(params["SecretId"])

    refresher.store._client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue", count
    )
    outcomes = [[r.outcome.value for r in refresher.run(RefreshRequest())] for _ in range(3)]

    assert outcomes == [["revoked", "pending"]] * 3
    assert not [r for r in reads if r.endswith("/credentials")]  # metadata only, until a new version
    calls = refresh_calls(zoho)

    # A bootstrap (here: new credentials for the placeholder) is noticed at the next tick.
    waiting = seed_connection(secretsmanager, zoho, "waiting", deployed=False)
    assert waiting.credentials_version
    assert [r.outcome.value for r in refresher.run(RefreshRequest())] == ["revoked", "refreshed"]
    assert refresh_calls(zoho) == calls + 1
