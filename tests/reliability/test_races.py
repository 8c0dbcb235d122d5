"""Races on one connection: compare-and-swap writers, handler invocations plus a CLI refresh, and a
bootstrap --replace racing a scheduled refresh (random timing and forced interleavings).

What "converged" means after every race (:func:`assert_converged`): status ok; the access-token
secret's ``credentials_version`` equals the credentials secret's current VersionId right away (no extra
tick); the stored token is accepted by the API; and it still is once the previous refresh token is
revoked at Zoho, which proves it was minted from the newest credentials.
"""

from __future__ import annotations

import io
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from lambda_refresh.models import AccessTokenState, RefreshRequest, Status
from lambda_refresh.refresh import Refresher, Settings
from lambda_refresh.store import ConcurrentWriteError, SecretStore, cas_token
from lambda_refresh.telemetry import CONNECTIONS_NEEDING_ACTION
from tests import leakguard
from tests.reliability.conftest import (
    CONN,
    CREDENTIALS_SECRET,
    TOKEN_SECRET,
    LambdaHarness,
    assert_not_older,
    metric_values,
    only_result,
    read_credentials,
    refresh_calls,
)
from tests.reliability.security_table import RACES
from tests.support import SeededConnection, access_token_versions, api_accepts, read_state, seed_connection
from zoho_token.bootstrap import BootstrapOptions, run_bootstrap
from zoho_token.console import CliError, Output

# Two invocations in one process share Powertools' Metrics object, so one of them may flush both sets
# and the other finds none (separate Lambda containers never share it).
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ITERATIONS = {race.id: race.iterations for race in RACES}
LEFT_WHEN_DUE = 840


def run_threads(*targets: Callable[[], None], timeout: float = 60) -> None:
    """Start the targets behind one barrier, join them, and re-raise the first failure."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout)
                target()
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                errors.append(err)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a racer hung"
    if errors:
        raise errors[0]


def client(aws: Any) -> Any:
    return boto3.client("secretsmanager", endpoint_url=aws.url, region_name="us-east-1")


def refresh_mints(sim: Any) -> int:
    """Refresh requests that minted a token (the bootstrap's client check sends one that cannot)."""
    return sum(1 for e in sim.request_log if e.grant_type == "refresh_token" and e.outcome == "issued")


def assert_converged(sm: Any, zoho: Any, old_refresh_token: str | None = None) -> AccessTokenState:
    state = read_state(sm, CONN)
    credentials, version = read_credentials(sm)
    assert state.status is Status.OK, state.error
    assert state.credentials_version == version
    assert api_accepts(zoho, state)
    if old_refresh_token is not None and old_refresh_token != credentials.refresh_token:
        if zoho.is_refresh_token_valid(old_refresh_token):
            zoho.revoke(old_refresh_token)
        assert api_accepts(zoho, state), "the stored token was minted from the replaced refresh token"
    leakguard.register(state.access_token)
    return state


# ---------------------------------------------------------------------------------------------------------
# Compare-and-swap


@pytest.mark.parametrize("writers", [2, 4])
def test_writers_from_the_same_base_exactly_one_wins(aws: Any, secretsmanager: Any, writers: int) -> None:
    secretsmanager.create_secret(Name=TOKEN_SECRET, SecretString=AccessTokenState(dc="eu").to_secret_string())
    stores = [SecretStore(client(aws)) for _ in range(writers)]
    for iteration in range(ITERATIONS["cas-same-base"]):
        base = stores[0].read_access_token(CONN)
        won: dict[int, str] = {}
        lost: list[int] = []

        def writer(
            i: int,
            base: Any = base,
            iteration: int = iteration,
            won: dict[int, str] = won,
            lost: list[int] = lost,
        ) -> Callable[[], None]:
            state = base.value.with_changes(access_token=f"cas-race-token-{iteration}-{i}", status=Status.OK)

            def write() -> None:
                try:
                    won[i] = stores[i].write_access_token(CONN, state, base=base)
                except ConcurrentWriteError:
                    lost.append(i)

            return write

        run_threads(*(writer(i) for i in range(writers)))

        assert len(won) == 1, f"iteration {iteration}: {len(won)} writers won"
        assert len(lost) == writers - 1
        ((winner, version),) = won.items()
        assert version == cas_token(TOKEN_SECRET, base.version_id)
        current = stores[0].read_access_token(CONN)
        assert current.version_id == version
        assert current.value.access_token == f"cas-race-token-{iteration}-{winner}"


# ---------------------------------------------------------------------------------------------------------
# Two handler invocations and a CLI refresh


def test_two_invocations_and_a_cli_refresh_at_the_same_moment(
    aws: Any, secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness
) -> None:
    seed_connection(secretsmanager, zoho, CONN)
    assert only_result(lam())["outcome"] == "refreshed"
    # What `zoho-token refresh` builds: its own settings, store and boto3 client.
    cli = Refresher(
        Settings(connections=(CONN,), prefix="zoho/", allow_local_accounts=True),
        SecretStore(client(aws), prefix="zoho/"),
        clock=lam.now,
    )
    for iteration in range(ITERATIONS["two-invocations-and-cli"]):
        zoho_clock.advance(3600 - LEFT_WHEN_DUE)  # due for every contender
        before = read_state(secretsmanager, CONN)
        versions = access_token_versions(secretsmanager, CONN)
        calls = refresh_calls(zoho)
        outcomes: list[str] = []

        def invoke(outcomes: list[str] = outcomes) -> None:
            outcomes.append(only_result(lam())["outcome"])

        def cli_refresh(outcomes: list[str] = outcomes) -> None:
            (result,) = cli.run(RefreshRequest(connection=CONN))
            outcomes.append(result.outcome.value)

        run_threads(invoke, invoke, cli_refresh)

        assert len(outcomes) == 3
        assert set(outcomes) <= {"refreshed", "fresh"}, outcomes
        assert "refreshed" in outcomes
        assert refresh_calls(zoho) - calls <= 3
        assert access_token_versions(secretsmanager, CONN) == versions + 1, f"iteration {iteration}"
        after = assert_converged(secretsmanager, zoho)
        assert_not_older(before, after)
        assert after.expires_at is not None
        assert before.expires_at is not None
        assert after.expires_at > before.expires_at


# ---------------------------------------------------------------------------------------------------------
# bootstrap --replace racing a scheduled refresh


class GatedStdin:
    """Non-interactive stdin whose next line is handed over by the test: the bootstrap waits at its
    grant-code prompt, after its preflight read both secrets, until :meth:`feed`."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self._lines: queue.Queue[str] = queue.Queue()

    def isatty(self) -> bool:
        return False

    def readline(self, size: int = -1) -> str:
        self.waiting.set()
        return self._lines.get(timeout=30)

    def feed(self, line: str) -> None:
        self._lines.put(line + "\n")


class Bootstrapper:
    """Runs ``zoho_token.bootstrap.run_bootstrap`` (what ``zoho-token bootstrap --replace`` does)."""

    def __init__(self, zoho: Any, seeded: SeededConnection) -> None:
        self.zoho = zoho
        self.seeded = seeded
        self.exit_codes: list[int] = []
        self.outputs: list[str] = []

    def code(self) -> str:
        code: str = self.zoho.issue_grant_code(self.seeded.client_id)
        leakguard.register(code)
        return code

    def __call__(self, code: str | None, *, revoke_old: bool = False) -> None:
        stdout, stderr = io.StringIO(), io.StringIO()
        out = Output(quiet=True, json_mode=True, stdout=stdout, stderr=stderr)
        env = {
            "ZOHO_CLIENT_SECRET": self.seeded.client_secret,
            "ZOHO_ALLOW_LOCAL_ACCOUNTS": "true",
            "AWS_REGION": "us-east-1",
        }
        options = BootstrapOptions(
            connection=CONN,
            client_id=self.seeded.client_id,
            dc="eu",
            accounts_url=self.zoho.url,
            code=code,
            replace=True,
            revoke_old=revoke_old,
        )
        try:
            exit_code = run_bootstrap(options, out, env)
        except CliError as err:
            exit_code = err.exit_code
            stderr.write(err.message)
        text = stdout.getvalue() + stderr.getvalue()
        assert not leakguard.find_leaks(text)
        self.outputs.append(text)
        self.exit_codes.append(exit_code)
        assert exit_code == 0, text


@pytest.fixture
def seeded(secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness) -> SeededConnection:
    zoho_clock.set(time.time())  # the bootstrap stamps with the real clock; keep the simulator on it
    return seed_connection(secretsmanager, zoho, CONN)


def make_due(zoho_clock: Any, lam: LambdaHarness) -> None:
    """A token minted 46 min ago by the simulator's clock, then the clock back on real time: due now."""
    zoho_clock.set(time.time() - (3600 - LEFT_WHEN_DUE))
    assert only_result(lam({"connection": CONN, "force": True}))["outcome"] == "refreshed"
    zoho_clock.set(time.time())


def test_bootstrap_replace_racing_a_scheduled_refresh(
    secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness, seeded: SeededConnection
) -> None:
    bootstrap = Bootstrapper(zoho, seeded)
    for _ in range(ITERATIONS["bootstrap-vs-refresh-random"]):
        make_due(zoho_clock, lam)
        old, _ = read_credentials(secretsmanager)
        code = bootstrap.code()
        outcomes: list[str] = []

        def tick(outcomes: list[str] = outcomes) -> None:
            outcomes.append(only_result(lam())["outcome"])

        def replace(code: str = code) -> None:
            bootstrap(code)

        run_threads(tick, replace)

        assert outcomes[0] in ("refreshed", "fresh")
        assert_converged(secretsmanager, zoho, old.refresh_token)
    assert bootstrap.exit_codes == [0] * ITERATIONS["bootstrap-vs-refresh-random"]


def _pause_refresh_at(lam: LambdaHarness, event: str, secret: str, action: Callable[[], None]) -> list[int]:
    """Run ``action`` inside the refresher's botocore call ``event`` on ``secret``, once."""
    ran: list[int] = []

    def hook(**kwargs: Any) -> None:
        if "parsed" in kwargs:  # after-call: the response names the secret
            target = kwargs["parsed"].get("Name")
        else:  # before-call: the serialised request does
            body = kwargs["params"]["body"]
            text = body.decode() if isinstance(body, bytes) else str(body)
            target = secret if f'"{secret}"' in text else None
        if not ran and target == secret:
            ran.append(1)
            action()

    lam.client.meta.events.register(event, hook)
    return ran


@pytest.mark.parametrize(
    "interleaving",
    [
        "refresh-writes-first",
        "bootstrap-writes-while-refresh-waits-to-write",
        "bootstrap-between-read-and-zoho",
    ],
)
def test_bootstrap_replace_against_each_interleaving(
    interleaving: str,
    secretsmanager: Any,
    zoho: Any,
    zoho_clock: Any,
    lam: LambdaHarness,
    seeded: SeededConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap = Bootstrapper(zoho, seeded)
    make_due(zoho_clock, lam)
    old, _ = read_credentials(secretsmanager)

    if interleaving == "refresh-writes-first":
        # The bootstrap has read both secrets and waits for its grant code while a tick refreshes.
        stdin = GatedStdin()
        monkeypatch.setattr(sys, "stdin", stdin)
        errors: list[BaseException] = []

        def replace() -> None:
            try:
                bootstrap(None)
            except BaseException as err:  # noqa: BLE001
                errors.append(err)

        thread = threading.Thread(target=replace, daemon=True)
        thread.start()
        assert stdin.waiting.wait(30), "the bootstrap never reached its grant-code prompt"
        assert only_result(lam())["outcome"] == "refreshed"
        stdin.feed(bootstrap.code())
        thread.join(60)
        assert not thread.is_alive()
        if errors:
            raise errors[0]
    else:
        code = bootstrap.code()
        if interleaving == "bootstrap-writes-while-refresh-waits-to-write":
            ran = _pause_refresh_at(
                lam, "before-call.secrets-manager.PutSecretValue", TOKEN_SECRET, lambda: bootstrap(code)
            )
        else:
            ran = _pause_refresh_at(
                lam, "after-call.secrets-manager.GetSecretValue", CREDENTIALS_SECRET, lambda: bootstrap(code)
            )
        mints = refresh_mints(zoho)
        result = only_result(lam())
        assert ran == [1]
        assert refresh_mints(zoho) == mints + 1  # minted from the old refresh token...
        assert result["outcome"] == "fresh"  # ...then kept the bootstrap's newer state

    assert bootstrap.exit_codes == [0]
    assert_converged(secretsmanager, zoho, old.refresh_token)
    assert only_result(lam())["outcome"] == "fresh"


def _revoke_old_mid_refresh(
    secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness, seeded: SeededConnection
) -> dict[str, Any]:
    bootstrap = Bootstrapper(zoho, seeded)
    make_due(zoho_clock, lam)
    old, _ = read_credentials(secretsmanager)
    code = bootstrap.code()
    ran = _pause_refresh_at(
        lam,
        "after-call.secrets-manager.GetSecretValue",
        CREDENTIALS_SECRET,
        lambda: bootstrap(code, revoke_old=True),
    )
    result = only_result(lam())
    assert ran == [1]
    assert not zoho.is_refresh_token_valid(old.refresh_token)
    assert_converged(secretsmanager, zoho)
    return result


def test_bootstrap_revoke_old_mid_refresh_keeps_the_new_state(
    secretsmanager: Any, zoho: Any, zoho_clock: Any, lam: LambdaHarness, seeded: SeededConnection
) -> None:
    _revoke_old_mid_refresh(secretsmanager, zoho, zoho_clock, lam, seeded)
    assert only_result(lam())["outcome"] == "fresh"  # the next tick sees the bootstrap's token


def test_bootstrap_revoke_old_mid_refresh_raises_no_false_alarm(
    secretsmanager: Any,
    zoho: Any,
    zoho_clock: Any,
    lam: LambdaHarness,
    seeded: SeededConnection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    result = _revoke_old_mid_refresh(secretsmanager, zoho, zoho_clock, lam, seeded)
    needing_action = metric_values(capsys.readouterr().out, CONNECTIONS_NEEDING_ACTION)
    assert result["outcome"] != "revoked"
    # Every metric set printed while this ran (the bootstrap's own run included) says nobody must act.
    assert needing_action
    assert set(needing_action) == {0.0}
