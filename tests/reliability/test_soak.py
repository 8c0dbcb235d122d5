"""Soak: a week of ticks of the real handler over a fleet, with random Zoho faults at a fixed seed.

Real parts: the handler and refresher as deployed, the Zoho simulator over HTTP on a simulated clock, and
moto's Secrets Manager. moto runs in-process here (``mock_aws``: botocore's full client path up to the
HTTP send, then moto's backend) rather than as a server, because moto's server spends ~3 ms of each
request listing its own package directory (``moto.backends.list_of_moto_modules``); at the ~30,000 AWS
calls of this run that alone would exceed the suite's time budget.

Memory is measured with tracemalloc over two 6-hour windows, the last quarter of day 1 and of day 7
(tracing costs ~3x per tick, so not the whole week): what was allocated inside a window and is still
alive at its end. A flat process retains about the same small amount in both; a leak retains more on day
7. The function's share excludes allocations whose innermost frame is in the harness (simulator, moto,
logging capture, this suite): one traced frame keeps the tracing affordable, so that split is approximate.
"""

from __future__ import annotations

import contextlib
import gc
import io
import random
import re
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from lambda_refresh import service
from lambda_refresh.models import AccessTokenState
from lambda_refresh.telemetry import CONNECTIONS_NEEDING_ACTION
from tests.reliability.conftest import LambdaHarness, metric_values
from tests.reliability.security_table import SOAK
from tests.support import seed_connection
from zoho_token.simulator import Fault, SimClock, ZohoSimulator

TICK = SOAK.tick_minutes * 60
TICKS_PER_DAY = 86_400 // TICK
WINDOW_TICKS = 6 * 3600 // TICK
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a fixed start so the run is the same every time
#: Error codes of the injected Zoho faults (what opens a connection's fault window).
FAULT_CODES = frozenset(
    {"zoho_unavailable", "timeout", "malformed_response", "rate_limited", "connection_error"}
)
TOKEN_SHAPED = re.compile(r"1000\.[0-9a-f]{32}\.[0-9a-f]{32}|(?<![0-9a-f])[0-9a-f]{42}(?![0-9a-f])")
#: Allocations made by the harness rather than the function (by innermost frame): the simulator, moto and
#: its request mock, the log records pytest and the leak guard keep, and this suite.
HARNESS_FILES = (
    "*/zoho_token/simulator.py",
    "*/moto/*",
    "*/responses/*",
    "*/werkzeug/*",
    "*/_pytest/*",
    "*/logging/__init__.py",
    "*/tests/*",
    "*/tracemalloc.py",
    "*/socketserver.py",
    "*/http/server.py",
)


@dataclass
class Fleet:
    """What the test tracks per connection, from the handler's results."""

    names: list[str]
    expiry: dict[str, datetime] = field(default_factory=dict)
    in_fault: dict[str, bool] = field(default_factory=dict)
    expired_attributed: int = 0
    expired_unattributed: int = 0
    tokens_lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    def record(self, now: datetime, results: list[dict[str, Any]]) -> None:
        assert [r["connection"] for r in results] == self.names
        for result in results:
            name, outcome = result["connection"], result["outcome"]
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            code = (result["error"] or {}).get("code")
            if outcome == "refreshed":
                self.in_fault[name] = False
            elif outcome in ("failed", "skipped") and code in FAULT_CODES:
                self.in_fault[name] = True
            elif outcome != "fresh":
                self.unexpected.append(f"{now:%FT%T} {name} {outcome} {code}")
            expires = datetime.fromisoformat(result["expires_at"].replace("Z", "+00:00"))
            previous = self.expiry.get(name)
            if previous is not None and (
                expires < previous or (outcome == "refreshed" and expires <= previous)
            ):
                self.tokens_lost.append(f"{now:%FT%T} {name}: expiry {previous} -> {expires} ({outcome})")
            self.expiry[name] = expires
            # Every minute until the next tick: is the stored token expired, and is a fault to blame?
            for minute in range(TICK // 60):
                if expires <= now + timedelta(minutes=minute):
                    if self.in_fault.get(name):
                        self.expired_attributed += 1
                    else:
                        self.expired_unattributed += 1


class Faults:
    """The week's fault plan, drawn once from the seed, applied tick by tick."""

    def __init__(self, rng: random.Random, days: int) -> None:
        self.outages: list[tuple[float, float]] = []
        self.bursts: dict[int, list[tuple[Fault, int]]] = {}
        for day in range(days):
            base = START + day * 86_400
            start = base + rng.uniform(0, 86_400)
            self.outages.append((start, start + rng.randint(10, 40) * 60))
            for _ in range(2):
                fault = rng.choice((Fault.RATE_LIMIT, Fault.RATE_LIMIT_400))
                self._add(rng, day, fault, rng.randint(1, 3))
            self._add(rng, day, Fault.MALFORMED_JSON, rng.randint(1, 2))
        for _ in range(4):
            self._add(rng, rng.randrange(days), Fault.TIMEOUT, 1)
        self.outage_on = False
        self.injected = 0

    def _add(self, rng: random.Random, day: int, fault: Fault, count: int) -> None:
        tick = day * TICKS_PER_DAY + rng.randrange(TICKS_PER_DAY)
        self.bursts.setdefault(tick, []).append((fault, count))

    def apply(self, sim: ZohoSimulator, tick: int, now: float) -> None:
        outage = any(start <= now < end for start, end in self.outages)
        if outage and not self.outage_on:
            sim.inject(Fault.HTML_503, count=None)
            self.injected += 1
        elif self.outage_on and not outage:
            sim.clear_faults()
        self.outage_on = outage
        for fault, count in self.bursts.get(tick, ()):
            sim.inject(fault, count=count)
            self.injected += 1


@contextlib.contextmanager
def traced_window() -> Iterator[dict[str, int]]:
    """Trace allocations; on exit report what is still alive: everything, and the function's share."""
    figures: dict[str, int] = {}
    gc.collect()
    tracemalloc.start(1)
    try:
        yield figures
    finally:
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        figures["all"] = sum(s.size for s in snapshot.statistics("filename"))
        excluded = [tracemalloc.Filter(False, pattern, all_frames=True) for pattern in HARNESS_FILES]
        figures["function"] = sum(s.size for s in snapshot.filter_traces(excluded).statistics("filename"))


def _state(sm: Any, name: str) -> AccessTokenState:
    value = sm.get_secret_value(SecretId=f"zoho/{name}/access-token")["SecretString"]
    return AccessTokenState.from_secret_string(value)


@pytest.mark.slow
def test_a_week_of_ticks_keeps_every_token_alive(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from moto import mock_aws

    started = time.perf_counter()
    # Keep pytest's in-memory log capture out of it: the handler's own log lines still print.
    caplog.set_level("WARNING")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    clock = SimClock(start=START)
    sim = ZohoSimulator("eu", clock=clock)
    sim.settings.hang_seconds = 1.2
    rng = random.Random(SOAK.seed)
    faults = Faults(rng, SOAK.days)
    names = [f"soak-{i:02d}" for i in range(SOAK.connections)]
    fleet = Fleet(names)
    lam = LambdaHarness(monkeypatch, clock)
    memory: dict[int, dict[str, int]] = {}
    leaked_shapes = 0
    needing_action = 0.0
    with mock_aws(), sim:
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        for name in names:
            seed_connection(sm, sim, name)
        exchanges = sim.stats.token_requests["authorization_code"]
        lam.configure(names, REFRESH_CONCURRENCY="4")
        total_ticks = SOAK.days * TICKS_PER_DAY
        window = contextlib.ExitStack()
        with window:
            for tick in range(total_ticks):
                day, in_day = divmod(tick, TICKS_PER_DAY)
                if in_day == TICKS_PER_DAY - WINDOW_TICKS and day in (0, SOAK.days - 1):
                    memory[day + 1] = window.enter_context(traced_window())
                faults.apply(sim, tick, clock())
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    response = lam()
                printed = out.getvalue()
                leaked_shapes += len(TOKEN_SHAPED.findall(printed))
                needing_action = max([needing_action, *metric_values(printed, CONNECTIONS_NEEDING_ACTION)])
                fleet.record(lam.now(), response["results"])
                clock.advance(TICK)
                if in_day == TICKS_PER_DAY - 1:
                    window.close()
                    _check_stored(sm, sim, fleet, lam.now())
        refresh_calls = sim.stats.token_requests["refresh_token"]
        served = sim.stats.faults_served
        faults_by_kind = dict(sim.stats.faults_by_kind)
        assert sim.stats.token_requests["authorization_code"] == exchanges
    service.reset()

    elapsed = time.perf_counter() - started
    per_connection_day = refresh_calls / SOAK.connections / SOAK.days
    ratio = per_connection_day / 24
    day1, day7 = memory[1], memory[SOAK.days]
    mb = 1024 * 1024
    print(
        f"\nsoak: {total_ticks} ticks x {SOAK.connections} connections over {SOAK.days} simulated days in "
        f"{elapsed:.1f} s; faults injected {faults.injected}, served {served}; Zoho refresh calls "
        f"{refresh_calls} = {per_connection_day:.1f}/connection/day = {ratio:.3f} x 24; expired token-minutes "
        f"attributed {fleet.expired_attributed}, unattributed {fleet.expired_unattributed}; tokens lost "
        f"{len(fleet.tokens_lost)}; unexpected outcomes {len(fleet.unexpected)}; outcomes {fleet.outcomes}; "
        f"faults served by kind {faults_by_kind}; "
        f"retained over a 6 h window, day 1 vs day {SOAK.days}: all {day1['all'] / mb:.2f} vs "
        f"{day7['all'] / mb:.2f} MB, function {day1['function'] / mb:.2f} vs {day7['function'] / mb:.2f} MB; "
        f"token-shaped strings printed {leaked_shapes}; max ConnectionsNeedingAction {needing_action:g}"
    )
    assert served > 0
    assert fleet.expired_unattributed == 0
    assert fleet.tokens_lost == []
    assert fleet.unexpected == []
    assert ratio <= SOAK.max_calls_ratio
    assert leaked_shapes == 0
    assert needing_action == 0
    assert day7["all"] <= day1["all"] + SOAK.memory_bound_mb * mb
    assert day7["function"] <= day1["function"] + SOAK.memory_bound_mb * mb


def _check_stored(sm: Any, sim: ZohoSimulator, fleet: Fleet, now: datetime) -> None:
    """Once a simulated day: the stored state matches the results, and a live token works at Zoho."""
    for name in fleet.names:
        state = _state(sm, name)
        assert state.access_token is not None
        assert state.expires_at == fleet.expiry[name]
        if state.expires_at > now and not sim.is_access_token_valid(state.access_token):
            fleet.tokens_lost.append(f"{now:%FT%T} {name}: stored unexpired token rejected by Zoho")


def test_the_fault_plan_is_fixed_by_the_seed() -> None:
    first = Faults(random.Random(SOAK.seed), SOAK.days)
    again = Faults(random.Random(SOAK.seed), SOAK.days)
    assert first.outages == again.outages
    assert first.bursts == again.bursts
    assert len(first.outages) == SOAK.days
    assert all(10 * 60 <= end - start <= 40 * 60 for start, end in first.outages)
    assert sum(1 for burst in first.bursts.values() for fault, _ in burst if fault is Fault.TIMEOUT) == 4
