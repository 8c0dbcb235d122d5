"""Fault matrix: every Zoho fault of the simulator x three phases, AWS faults on botocore's call path,
and the process dying between Zoho's answer and the write.

The cases and their expected outcomes come from :mod:`tests.reliability.security_table`, which also
renders them into SECURITY.md; the last test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from lambda_refresh.models import AccessTokenState, Status
from lambda_refresh.refresh import ConfigurationError
from lambda_refresh.telemetry import CONNECTIONS_NEEDING_ACTION
from tests import leakguard
from tests.reliability import security_table
from tests.reliability.conftest import (
    CONN,
    LambdaHarness,
    assert_not_older,
    metric_values,
    new_credentials_version,
    only_result,
    read_credentials,
    refresh_calls,
)
from tests.reliability.security_table import (
    AFTER_BACKOFF,
    AWS_FAULTS,
    NEW_CREDENTIALS,
    NEXT_TICK,
    NOTHING_TO_RECOVER,
    PHASES,
    PROCESS_DEATH_PHASES,
    ZOHO_FAULTS,
    AwsFaultCase,
    ZohoFaultCase,
)
from tests.support import access_token_versions, api_accepts, read_state, seed_connection
from zoho_token.simulator import Fault

# The handler answers an invalid event (or a process dies) before any metric exists: Powertools warns.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

LEFT_WHEN_ROUTINE = 840  # seconds left on the token at a routine tick: within the 900 s margin
TICK = 600
FORCE = {"connection": CONN, "force": True}


@dataclass
class Prepared:
    before: AccessTokenState
    event: dict[str, Any]


def prepare(phase: str, sm: Any, zoho: Any, clock: Any, lam: LambdaHarness) -> Prepared:
    """Bring the connection to the phase: pending; a token 14 min from expiry; or a fresh token."""
    seed_connection(sm, zoho, CONN)
    if phase == "first":
        return Prepared(read_state(sm, CONN), {})
    assert only_result(lam())["outcome"] == "refreshed"
    if phase == "routine":
        clock.advance(3600 - LEFT_WHEN_ROUTINE)
        return Prepared(read_state(sm, CONN), {})
    clock.advance(120)
    return Prepared(read_state(sm, CONN), dict(FORCE))


def needing_action(capsys: pytest.CaptureFixture[str]) -> float:
    values = metric_values(capsys.readouterr().out, CONNECTIONS_NEEDING_ACTION)
    assert values, "no ConnectionsNeedingAction metric was printed"
    return max(values)


# ---------------------------------------------------------------------------------------------------------
# Zoho faults x phases


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("case", ZOHO_FAULTS, ids=lambda c: c.fault)
def test_zoho_fault(
    case: ZohoFaultCase,
    phase: str,
    secretsmanager: Any,
    zoho: Any,
    zoho_clock: Any,
    lam: LambdaHarness,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if case.fault == "timeout":
        zoho.settings.hang_seconds = 1.2  # just past ZOHO_HTTP_TIMEOUT_SECONDS=1
    prepared = prepare(phase, secretsmanager, zoho, zoho_clock, lam)
    before = prepared.before
    calls = refresh_calls(zoho)
    capsys.readouterr()

    zoho.inject(Fault(case.fault), count=None)
    result = only_result(lam(prepared.event))

    state = read_state(secretsmanager, CONN)
    assert_not_older(before, state)
    assert result["outcome"] == case.outcome
    assert (result["error"] or {}).get("code") == case.error_code
    assert state.status is Status(case.status)
    assert (state.error.code if state.error else None) == case.error_code
    assert refresh_calls(zoho) - calls == case.calls_per_tick
    assert zoho.stats.faults_served == case.calls_per_tick
    assert needing_action(capsys) == (1 if case.needs_action else 0)
    if case.recovery == NOTHING_TO_RECOVER:
        assert state.access_token != before.access_token
        assert state.expires_at is not None
        assert state.expires_at - lam.now() <= timedelta(hours=1)
        assert api_accepts(zoho, state)
        return
    if before.access_token is not None:
        assert state.access_token == before.access_token
        assert api_accepts(zoho, state)  # the last good token still works
    else:
        assert state.access_token is None

    if case.recovery == NEXT_TICK:
        _transient_then_recovers(case, phase, secretsmanager, zoho, zoho_clock, lam, state)
    elif case.recovery == AFTER_BACKOFF:
        _backs_off_then_recovers(secretsmanager, zoho, zoho_clock, lam, state)
    else:
        assert case.recovery == NEW_CREDENTIALS
        _parked_until_new_credentials(case, secretsmanager, zoho, zoho_clock, lam, state, capsys)


def _recovered(sm: Any, zoho: Any, lam: LambdaHarness, failed: AccessTokenState, event: Any = None) -> None:
    result = only_result(lam(event))
    assert result["outcome"] == "refreshed", result
    state = read_state(sm, CONN)
    assert_not_older(failed, state)
    assert state.status is Status.OK
    assert state.error is None
    assert state.retry_not_before is None
    assert api_accepts(zoho, state)
    _, version = read_credentials(sm)
    assert state.credentials_version == version


def _transient_then_recovers(
    case: ZohoFaultCase,
    phase: str,
    sm: Any,
    zoho: Any,
    clock: Any,
    lam: LambdaHarness,
    failed: AccessTokenState,
) -> None:
    # The repeat tick behaves the same in every phase (the status is failing by then): shown once, in the
    # routine phase, and not for the timeout, where it costs two more real timeouts.
    if phase == "routine" and case.fault != "timeout":
        versions = access_token_versions(sm, CONN)
        calls = refresh_calls(zoho)
        clock.advance(TICK)
        again = only_result(lam())
        assert again["outcome"] == "failed"
        assert again["error"]["code"] == case.error_code
        assert refresh_calls(zoho) - calls == case.calls_per_tick
        # Same status and code: nothing written (one write per outage, not one per tick).
        assert access_token_versions(sm, CONN) == versions
        assert read_state(sm, CONN).error == failed.error
    zoho.clear_faults()
    clock.advance(TICK)
    _recovered(sm, zoho, lam, failed)


def _backs_off_then_recovers(
    sm: Any, zoho: Any, clock: Any, lam: LambdaHarness, failed: AccessTokenState
) -> None:
    assert failed.retry_not_before is not None
    wait = failed.retry_not_before - lam.now()
    # Stored in whole seconds, so up to a second less than the 10 minutes plus 0-60 s of jitter.
    assert timedelta(minutes=10, seconds=-1) < wait <= timedelta(minutes=11)
    calls = refresh_calls(zoho)
    for minutes, event in ((2, None), (3, FORCE), (4, None)):  # +2, +5, +9 min
        clock.advance(minutes * 60)
        result = only_result(lam(event))
        assert result["outcome"] == "skipped"
        # A forced refresh may be refused earlier, for the failing status itself; either way: no call.
        assert result["error"]["code"] in ({"rate_limited", "refresh_failing"} if event else {"rate_limited"})
    assert refresh_calls(zoho) == calls  # nothing sent during the back-off, forced or not
    zoho.clear_faults()
    clock.advance(2 * 60)  # +11 min: past 10 min plus the largest jitter
    _recovered(sm, zoho, lam, failed)


def _parked_until_new_credentials(
    case: ZohoFaultCase,
    sm: Any,
    zoho: Any,
    clock: Any,
    lam: LambdaHarness,
    failed: AccessTokenState,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zoho.clear_faults()  # Zoho would answer now, but only a human can know that
    calls = refresh_calls(zoho)
    for event in (None, FORCE, None):
        clock.advance(TICK)
        result = only_result(lam(event))
        assert result["outcome"] == case.outcome
        assert needing_action(capsys) >= 1
    assert refresh_calls(zoho) == calls
    assert read_state(sm, CONN).status is Status(case.status)

    new_credentials_version(sm)  # the operator's re-bootstrap
    _recovered(sm, zoho, lam, failed)
    assert needing_action(capsys) == 0


# ---------------------------------------------------------------------------------------------------------
# AWS faults on the refresher's own botocore client


class AwsFault:
    """A ``before-call`` hook answering one operation on one secret with an AWS error.

    Returning ``(http_response, parsed)`` from ``before-call`` replaces the HTTP exchange; botocore then
    raises the modelled ``ClientError`` itself, as it does once its retries are exhausted.
    """

    def __init__(self, case: AwsFaultCase) -> None:
        self.case = case
        self.served = 0
        self.active = True

    def __call__(self, **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = kwargs["params"]["body"]
        text = body.decode() if isinstance(body, bytes) else str(body)
        if not self.active or f'/{self.case.secret}"' not in text:
            return None
        self.served += 1
        parsed = {
            "Error": {"Code": self.case.aws_code, "Message": self.case.message},
            "ResponseMetadata": {"HTTPStatusCode": self.case.http_status},
        }
        return AWSResponse(
            "https://secretsmanager.invalid/", self.case.http_status, HTTPHeaders(), None
        ), parsed


@pytest.fixture
def routine_connection(
    secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness
) -> AccessTokenState:
    prepared = prepare("routine", secretsmanager, zoho, zoho_clock, lam)
    return prepared.before


@pytest.fixture
def aws_fault(
    request: pytest.FixtureRequest, lam: LambdaHarness, routine_connection: AccessTokenState
) -> Iterator[AwsFault]:
    """The hook, registered once the connection is in the routine phase (its first refresh is clean)."""
    case: AwsFaultCase = request.param
    hook = AwsFault(case)
    event = f"before-call.secrets-manager.{case.operation}"
    lam.client.meta.events.register(event, hook)
    yield hook
    lam.client.meta.events.unregister(event, hook)


def _run_aws_fault(
    hook: AwsFault, before: AccessTokenState, sm: Any, zoho: Any, lam: LambdaHarness
) -> dict[str, Any]:
    case = hook.case
    calls = refresh_calls(zoho)
    if case.zoho_fault:
        zoho.inject(Fault(case.zoho_fault), count=None)
    result = only_result(lam())
    assert hook.served >= 1, "the fault never reached the refresher's call path"
    assert refresh_calls(zoho) - calls == case.zoho_calls
    state = read_state(sm, CONN)
    assert_not_older(before, state)
    assert state.access_token == before.access_token
    assert api_accepts(zoho, state)
    assert result["outcome"] == case.outcome
    if case.stored == "unchanged":
        assert state == before
    else:
        assert state.status is Status(case.stored)
    return result


@pytest.mark.parametrize("aws_fault", AWS_FAULTS, ids=lambda c: c.id, indirect=True)
def test_aws_fault_keeps_the_token_and_recovers(
    aws_fault: AwsFault,
    routine_connection: AccessTokenState,
    secretsmanager: Any,
    zoho: Any,
    lam: LambdaHarness,
) -> None:
    result = _run_aws_fault(aws_fault, routine_connection, secretsmanager, zoho, lam)
    if aws_fault.case.stored != "unchanged":
        stored = read_state(secretsmanager, CONN)
        assert stored.error is not None
        assert stored.error.code == result["error"]["code"]
        assert aws_fault.case.aws_code in stored.error.message

    aws_fault.active = False
    zoho.clear_faults()
    _recovered(secretsmanager, zoho, lam, routine_connection)


def _aws_fault_params() -> list[Any]:
    return [
        pytest.param(c, id=c.id, marks=pytest.mark.xfail(strict=True, reason=c.bug) if c.bug else ())
        for c in AWS_FAULTS
    ]


@pytest.mark.parametrize("aws_fault", _aws_fault_params(), indirect=True)
def test_aws_fault_is_reported_with_its_code(
    aws_fault: AwsFault,
    routine_connection: AccessTokenState,
    secretsmanager: Any,
    zoho: Any,
    lam: LambdaHarness,
) -> None:
    result = _run_aws_fault(aws_fault, routine_connection, secretsmanager, zoho, lam)
    error = result["error"]
    assert error["code"] == aws_fault.case.error_code
    if aws_fault.case.zoho_fault is None:
        assert aws_fault.case.aws_code in error["message"]
        assert "secret zoho/crm-eu/" in error["message"]  # names the secret, never a value


# ---------------------------------------------------------------------------------------------------------
# The process dies between Zoho's answer and the write


class ProcessDied(BaseException):
    """Raised inside the PutSecretValue call: nothing after it in this process runs."""


@pytest.mark.parametrize("phase", PROCESS_DEATH_PHASES)
def test_process_death_between_zoho_and_the_write(
    phase: str, secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness
) -> None:
    prepared = prepare(phase, secretsmanager, zoho, zoho_clock, lam)
    mints = zoho.stats.mints
    versions = access_token_versions(secretsmanager, CONN)

    def die(**kwargs: Any) -> None:
        raise ProcessDied

    lam.client.meta.events.register("before-call.secrets-manager.PutSecretValue", die)
    with pytest.raises(ProcessDied):
        lam(prepared.event)

    assert zoho.stats.mints == mints + 1  # Zoho issued a token that was never stored
    assert access_token_versions(secretsmanager, CONN) == versions
    state = read_state(secretsmanager, CONN)
    assert state == prepared.before
    if state.access_token is not None:
        assert api_accepts(zoho, state)

    lam.configure()  # a new process: new refresher, new client, no hook
    zoho_clock.advance(60)
    _recovered(secretsmanager, zoho, lam, prepared.before)
    leakguard.register_all(zoho.issued_secrets())


def test_handler_never_raises_for_a_whole_fleet_under_mixed_faults(
    secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness
) -> None:
    """Several connections, each tick a different fault queued: one result per connection, always."""
    names = [f"c{i}" for i in range(4)]
    for name in names:
        seed_connection(secretsmanager, zoho, name)
    lam.configure(names)
    for fault in (Fault.HTML_503, Fault.RATE_LIMIT, Fault.INVALID_CLIENT, Fault.MALFORMED_JSON, None):
        if fault is not None:
            zoho.inject(fault, count=2)
        response = lam()
        assert [r["connection"] for r in response["results"]] == names
        assert {r["outcome"] for r in response["results"]} <= {
            "refreshed",
            "fresh",
            "failed",
            "misconfigured",
        }
        zoho.clear_faults()
        zoho_clock.advance(TICK)


def test_only_a_configuration_error_leaves_the_handler(lam: LambdaHarness) -> None:
    """The one exception the handler lets through: a broken environment (Lambda reports the error)."""
    lam.configure("Not A Name!")
    with pytest.raises(ConfigurationError, match="ZOHO_CONNECTIONS"):
        lam()


def test_security_md_table_is_current() -> None:
    text = security_table.SECURITY_MD.read_text(encoding="utf-8")
    assert security_table.current_block(text) == security_table.render(), (
        "SECURITY.md's fault table is stale: run python -m tests.reliability.security_table --write"
    )
