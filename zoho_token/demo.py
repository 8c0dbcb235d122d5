"""``zoho-token demo``: the main job on one machine, on a simulated clock.

It starts a moto server and one local Zoho simulator per data center on loopback, creates the secrets a
deployment would, bootstraps every connection through the real CLI code path, then runs the real Lambda
handler every 10 simulated minutes while a consumer reads the token through the consumer helper and
calls the simulator's API every simulated minute. Faults are injected along the way (an outage, a
rate-limit burst, timeouts, a revoked refresh token that an operator re-bootstraps), the alarms of
:mod:`lambda_refresh.telemetry` are evaluated on the metrics the handler really emitted, and the
summary attributes every expired minute and failed consumer call to its cause.

Exit code 0 when the invariants hold (no unattributed expired minute or consumer failure, and every
expired stretch preceded by the "token nearly expired" alarm), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

DCS: Final = ("eu", "us", "in")
PRODUCTS: Final = ("crm", "books", "desk", "projects")
TICK_MINUTES: Final = 10
PREFIX: Final = "zoho/"
LOG_GROUP: Final = "/aws/lambda/zoho-token-refresher-demo"
FUNCTION_NAME: Final = "zoho-token-refresher-demo"
PROBE_PATH: Final = "/crm/v8/users?type=CurrentUser"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zoho-token demo``."""
    parser.add_argument("--hours", type=float, default=48.0, help="simulated hours to run (default 48)")
    parser.add_argument(
        "--connections",
        type=int,
        default=3,
        help="connections, spread over the eu/us/in simulators (default 3)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (no timeline)")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="afterwards, keep moto and the simulators running and print the env exports to try the CLI",
    )
    parser.add_argument("--quiet", action="store_true", help="no timeline or progress, only the summary")


# ---------------------------------------------------------------------------------------------------------
# Simulated time


class DemoClock:
    """Simulated epoch seconds while the run lasts; real time once ``follow_real_time`` is called (so
    ``--serve`` leaves a coherent world: the simulation ends at the real "now")."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._real = False

    def __call__(self) -> float:
        return time.time() if self._real else self._now

    def set(self, epoch: float) -> None:
        self._now = epoch

    def follow_real_time(self) -> None:
        self._real = True

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)


# ---------------------------------------------------------------------------------------------------------
# What happens when


@dataclass(frozen=True)
class Incident:
    """An injected fault: which connections it can hurt and from when; it ends at their recovery."""

    label: str
    minute: int
    connections: tuple[str, ...]


@dataclass
class ConnectionReport:
    name: str
    dc: str
    refreshes: int = 0
    zoho_calls: int = 0
    consumer_calls: int = 0
    consumer_failures: Counter[str] = field(default_factory=Counter)
    expired_minutes: Counter[str] = field(default_factory=Counter)
    revoked_minutes: int = 0
    alarms: Counter[str] = field(default_factory=Counter)
    secret_versions: int = 0
    first_expired_minute: dict[str, int] = field(default_factory=dict)

    def unattributed(self) -> int:
        return self.consumer_failures.get("unattributed", 0) + self.expired_minutes.get("unattributed", 0)


@dataclass
class AlarmState:
    in_alarm: bool = False
    history: list[bool] = field(default_factory=list)
    fired_at: list[int] = field(default_factory=list)


class Timeline:
    """Readable, timestamped lines on stdout (rich when available), suppressed with --json/--quiet."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.lines: list[tuple[int, str, str]] = []
        self._console: Any = None
        if enabled:
            from rich.console import Console

            self._console = Console(highlight=False)

    def say(self, minute: int, text: str, style: str = "") -> None:
        self.lines.append((minute, style, text))
        if self._console is not None:
            stamp = f"+{minute // 60:02d}:{minute % 60:02d}"
            self._console.print(f"[dim]{stamp}[/dim] " + (f"[{style}]{text}[/{style}]" if style else text))


# ---------------------------------------------------------------------------------------------------------
# The run


class Demo:
    def __init__(self, hours: float, connection_count: int, *, timeline: Timeline, progress: bool) -> None:
        if not 1 <= connection_count <= 200:
            raise ValueError("--connections must be between 1 and 200")
        if not 1 <= hours <= 24 * 30:
            raise ValueError("--hours must be between 1 and 720")
        self.minutes = int(hours * 60)
        self.names = [
            f"{PRODUCTS[(i // len(DCS)) % len(PRODUCTS)]}-{DCS[i % len(DCS)]}" + (f"-{i}" if i >= 12 else "")
            for i in range(connection_count)
        ]
        self.dc_of = {name: DCS[i % len(DCS)] for i, name in enumerate(self.names)}
        self.timeline = timeline
        self.progress = progress
        # End the simulation at the real "now", so --serve continues in real time without a jump.
        self.start = float(int(time.time() // 60) * 60 - self.minutes * 60)
        self.clock = DemoClock(self.start)
        self.reports = {n: ConnectionReport(n, self.dc_of[n]) for n in self.names}
        self.alarms: dict[str, AlarmState] = {}
        self.incidents: dict[str, list[Incident]] = {n: [] for n in self.names}
        self.open_incident: dict[str, Incident | None] = dict.fromkeys(self.names)
        self.stored_expiry: dict[str, datetime | None] = dict.fromkeys(self.names)
        self.stored_status: dict[str, str] = dict.fromkeys(self.names, "pending")
        self.client_ids: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.client_secrets: dict[str, str] = {}
        self.emf: list[dict[str, Any]] = []
        self.minute = 0

    # -- setup ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def world(self) -> Iterator[None]:
        """moto, three simulators, the environment the function and the CLI read."""
        from zoho_token.local import MotoServer
        from zoho_token.simulator import SimulatorSettings, ZohoSimulator

        # Fake credentials first: nothing in the demo may reach a real AWS account.
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "demo",
                "AWS_SECRET_ACCESS_KEY": "demo",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        self.moto = MotoServer().start()
        self.sims = {
            dc: ZohoSimulator(dc, clock=self.clock, settings=SimulatorSettings(hang_seconds=1.2)).start()
            for dc in DCS
        }
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.moto.url,
                "ZOHO_SECRET_PREFIX": PREFIX,
                "ZOHO_CONNECTIONS": ",".join(self.names),
                "ZOHO_ALLOW_LOCAL_ACCOUNTS": "true",
                "ZOHO_HTTP_TIMEOUT_SECONDS": "1",
                "ZOHO_HEALTH_PROBES": json.dumps(dict.fromkeys(self.names, PROBE_PATH)),
                "ZOHO_REFRESH_FUNCTION": FUNCTION_NAME,
                "POWERTOOLS_SERVICE_NAME": "zoho-token-sync-demo",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            }
        )
        try:
            yield
        finally:
            self.close()

    def close(self) -> None:
        for sim in getattr(self, "sims", {}).values():
            sim.stop()
        if hasattr(self, "moto"):
            self.moto.stop()

    def deploy_and_bootstrap(self) -> None:
        import boto3

        from zoho_token.local import create_deployed_secrets

        self.sm = boto3.client("secretsmanager")
        self.logs = boto3.client("logs")
        key_id = boto3.client("kms").create_key(Description="zoho-token-sync demo key")["KeyMetadata"][
            "KeyId"
        ]
        self.logs.create_log_group(logGroupName=LOG_GROUP)
        self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="demo")
        for name in self.names:
            create_deployed_secrets(self.sm, name, self.dc_of[name], prefix=PREFIX, kms_key_id=key_id)
        self.timeline.say(
            0, f"deployed {len(self.names)} connections (placeholder secrets, KMS key, log group)"
        )
        for name in self.names:
            self.bootstrap(name, replace=False)

    def bootstrap(self, name: str, *, replace: bool) -> None:
        """What an operator does: a grant code from the API console, then ``zoho-token bootstrap``."""
        from zoho_token import cli

        sim = self.sims[self.dc_of[name]]
        if name not in self.client_ids:
            self.client_ids[name], self.client_secrets[name] = sim.register_client()
        code = sim.issue_grant_code(self.client_ids[name])
        argv = [
            "bootstrap",
            "--connection",
            name,
            "--client-id",
            self.client_ids[name],
            "--dc",
            self.dc_of[name],
        ]
        argv += ["--accounts-url", sim.url, "--code", code, "--quiet"]
        if replace:
            argv.append("--replace")
        os.environ["ZOHO_CLIENT_SECRET"] = self.client_secrets[name]
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exit_code = cli.main(argv)
        finally:
            os.environ.pop("ZOHO_CLIENT_SECRET", None)
        if exit_code != 0:
            raise RuntimeError(f"bootstrap of {name} failed with exit code {exit_code}")
        self.sync_state(name)
        self.refresh_tokens[name] = self.current_refresh_token(name)
        self.timeline.say(
            self.minute, f"{name}: bootstrapped ({'replaced' if replace else 'first'} grant code exchange)"
        )

    def current_refresh_token(self, name: str) -> str:
        from lambda_refresh.models import Credentials

        raw = self.sm.get_secret_value(SecretId=f"{PREFIX}{name}/credentials")["SecretString"]
        return Credentials.from_secret_string(raw).refresh_token

    def sync_state(self, name: str) -> None:
        from lambda_refresh.models import AccessTokenState

        raw = self.sm.get_secret_value(SecretId=f"{PREFIX}{name}/access-token")["SecretString"]
        state = AccessTokenState.from_secret_string(raw)
        self.stored_expiry[name] = state.expires_at
        self.stored_status[name] = state.status.value

    # -- the Lambda, in process ------------------------------------------------------------------------------

    def install_handler(self) -> None:
        """Import the real handler on the simulated clock and ship its log lines to moto's logs."""
        from lambda_refresh import service
        from lambda_refresh.observability import logger

        service.reset(clock=self.clock.datetime)
        self._log_sink = io.StringIO()
        handler = logger.registered_handler
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(self._log_sink)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        from lambda_refresh.handler import lambda_handler
        from zoho_token.local import LocalLambdaContext

        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            response: dict[str, Any] = lambda_handler(event, LocalLambdaContext(FUNCTION_NAME, 60_000))
        for line in captured.getvalue().splitlines():
            if '"_aws"' in line:
                self.emf.append(json.loads(line))
        self.ship_logs()
        for result in response.get("results", []):
            name = result["connection"]
            if result["outcome"] == "refreshed":
                self.reports[name].refreshes += 1
            if result["outcome"] in ("refreshed", "revoked", "misconfigured", "failed"):
                self.sync_state(name)
        return response

    def ship_logs(self) -> None:
        lines = [line for line in self._log_sink.getvalue().splitlines() if line.strip()]
        self._log_sink.seek(0)
        self._log_sink.truncate()
        if lines:
            stamp = int(self.clock() * 1000)
            self.logs.put_log_events(
                logGroupName=LOG_GROUP,
                logStreamName="demo",
                logEvents=[{"timestamp": stamp, "message": line} for line in lines],
            )

    # -- faults -----------------------------------------------------------------------------------------------

    def schedule(self) -> dict[int, list[Callable[[], None]]]:
        """Faults spread over the run (positions scale with --hours; durations do not)."""
        from zoho_token.simulator import Fault

        plan: dict[int, list[Callable[[], None]]] = {}

        def at(fraction: float, action: Callable[[], None], offset: int = 0) -> None:
            minute = int(self.minutes * fraction) // TICK_MINUTES * TICK_MINUTES + 5 + offset
            if minute < self.minutes:
                plan.setdefault(minute, []).append(action)

        def on_dc(dc: str) -> tuple[str, ...]:
            return tuple(n for n in self.names if self.dc_of[n] == dc)

        def outage() -> None:
            self.sims["eu"].inject(Fault.HTML_503, count=None)
            self.open(Incident("outage", self.minute, on_dc("eu")))
            self.timeline.say(
                self.minute, "eu accounts server down: HTML 503 maintenance page for 40 min", "red"
            )

        def outage_over() -> None:
            self.sims["eu"].clear_faults()
            self.timeline.say(self.minute, "eu accounts server back", "green")

        def rate_limit() -> None:
            self.sims["us"].inject(Fault.RATE_LIMIT, count=1)
            self.open(Incident("rate-limit", self.minute, on_dc("us")))
            self.timeline.say(
                self.minute, "us: the next token request gets 'Access Denied … too many requests'", "red"
            )

        def timeouts() -> None:
            self.sims["in"].inject(Fault.TIMEOUT, count=2)
            self.open(Incident("timeouts", self.minute, on_dc("in")))
            self.timeline.say(
                self.minute, "in: the next 2 token requests hang until the client times out", "red"
            )

        victim = self.names[0]

        def revoke() -> None:
            self.sims[self.dc_of[victim]].revoke(self.refresh_tokens[victim])
            self.open(Incident("revocation", self.minute, (victim,)))
            self.timeline.say(
                self.minute, f"{victim}: the user removed the app in Zoho (refresh token revoked)", "red"
            )

        def rebootstrap() -> None:
            self.timeline.say(
                self.minute, f"{victim}: operator runs 'zoho-token bootstrap --replace'", "yellow"
            )
            self.bootstrap(victim, replace=True)

        # The outage starts 5 minutes before a refresh falls due, so it outlasts the token.
        at(0.125, outage, offset=40)
        at(0.125, outage_over, offset=80)
        at(0.3, rate_limit)
        at(0.45, timeouts)
        at(0.625, revoke)
        at(0.625, rebootstrap, offset=40)
        return plan

    def open(self, incident: Incident) -> None:
        for name in incident.connections:
            self.incidents[name].append(incident)
            self.open_incident[name] = incident

    def cause(self, name: str) -> str:
        incident = self.open_incident[name]
        return incident.label if incident is not None else "unattributed"

    def maybe_close_incidents(self) -> None:
        """An incident ends for a connection once its fault is gone and it holds a good token again."""
        now = self.clock.datetime()
        for name in self.names:
            incident = self.open_incident[name]
            if incident is None or self.minute - incident.minute < 45:
                continue
            expiry = self.stored_expiry[name]
            if self.stored_status[name] == "ok" and expiry is not None and expiry > now:
                self.open_incident[name] = None

    # -- alarms -------------------------------------------------------------------------------------------------

    def evaluate_alarms(self) -> None:
        """One datapoint per alarm per tick from the EMF the handler printed since the last tick."""
        from lambda_refresh.telemetry import ALARM_RULES

        values: dict[str, list[float]] = {}
        for blob in self.emf:
            directives = blob["_aws"]["CloudWatchMetrics"]
            for directive in directives:
                if directive["Dimensions"] != [["service"]]:
                    continue
                for metric in directive["Metrics"]:
                    raw = blob.get(metric["Name"])
                    raw_points: list[Any] = raw if isinstance(raw, list) else [raw]
                    values.setdefault(metric["Name"], []).extend(
                        float(p) for p in raw_points if p is not None
                    )
        self.emf.clear()
        for rule in ALARM_RULES:
            datapoints = values.get(rule.metric)
            value: float | None = None
            if datapoints:
                value = _STATISTICS[rule.statistic](datapoints)
            state = self.alarms.setdefault(rule.name, AlarmState())
            state.history.append(rule.breaches(value))
            window = state.history[-rule.evaluation_periods :]
            alarm = sum(window) >= rule.datapoints_to_alarm
            if alarm and not state.in_alarm:
                state.fired_at.append(self.minute)
                affected = [n for n in self.names if self.open_incident[n] is not None] or [
                    "(no open incident)"
                ]
                for name in affected:
                    if name in self.reports:
                        self.reports[name].alarms[rule.name] += 1
                self.timeline.say(self.minute, f"ALARM {rule.name} → {', '.join(affected)}", "bold magenta")
            elif not alarm and state.in_alarm:
                self.timeline.say(self.minute, f"OK    {rule.name}", "green")
            state.in_alarm = alarm

    # -- the consumer ---------------------------------------------------------------------------------------------

    def consume(self, name: str, session: Any) -> None:
        """One consumer call: the helper's token, then the Zoho API; a rejected token asks for a refresh."""
        from lambda_refresh import consumer

        report = self.reports[name]
        report.consumer_calls += 1
        try:
            token = consumer.get_access_token(name, prefix=PREFIX)
            if self.api_ok(session, token):
                return
            token = consumer.request_refresh(
                name, invalid_token=token, prefix=PREFIX, lambda_client=self.local_lambda, timeout_seconds=2
            )
            self.sync_state(name)
            if self.api_ok(session, token):
                return
            report.consumer_failures[self.cause(name)] += 1
        except consumer.ZohoTokenError:
            report.consumer_failures[self.cause(name)] += 1

    @staticmethod
    def api_ok(session: Any, token: Any) -> bool:
        response = session.get(
            f"{token.api_domain}/crm/v8/users",
            headers={"Authorization": token.authorization_header},
            timeout=5,
        )
        return bool(response.status_code == 200)

    # -- main loop ------------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        import requests

        from lambda_refresh import consumer

        started = time.monotonic()
        self.local_lambda = LocalLambda(self)
        self.deploy_and_bootstrap()
        self.install_handler()
        consumer.use_clock(self.clock.datetime)
        # The consumer helper warns about failing connections; the timeline already tells that story.
        logging.getLogger(consumer.__name__).setLevel(logging.ERROR)
        plan = self.schedule()
        session = requests.Session()
        progress = _progress(self.minutes) if self.progress else contextlib.nullcontext(None)
        try:
            with progress as bar:
                for minute in range(self.minutes + 1):
                    self.minute = minute
                    self.clock.set(self.start + minute * 60)
                    for action in plan.get(minute, []):
                        action()
                    if minute % TICK_MINUTES == 0:
                        self.tick()
                    now = self.clock.datetime()
                    for name in self.names:
                        self.account_minute(name, now)
                        self.consume(name, session)
                    if bar is not None and minute % 60 == 0:
                        bar[0].update(bar[1], completed=minute)
        finally:
            consumer.use_clock(None)
        return self.summary(time.monotonic() - started)

    def tick(self) -> None:
        response = self.invoke({})
        for result in response["results"]:
            if result["outcome"] in ("failed", "revoked", "misconfigured") and result.get("error"):
                self.timeline.say(
                    self.minute,
                    f"{result['connection']}: {result['outcome']} ({result['error']['code']})",
                    "yellow",
                )
        self.evaluate_alarms()
        self.maybe_close_incidents()

    def account_minute(self, name: str, now: datetime) -> None:
        report = self.reports[name]
        if self.stored_status[name] == "revoked":
            report.revoked_minutes += 1
            return
        expiry = self.stored_expiry[name]
        if expiry is None or expiry <= now:
            cause = self.cause(name)
            report.expired_minutes[cause] += 1
            report.first_expired_minute.setdefault(cause, self.minute)

    def summary(self, wall_seconds: float) -> dict[str, Any]:
        nearly = self.alarms.get("TokenNearlyExpired", AlarmState()).fired_at
        per_client: Counter[str] = Counter()
        for sim in self.sims.values():
            per_client.update(sim.stats.token_requests_by_client)
        violations: list[str] = []
        connections = []
        for name, report in self.reports.items():
            report.zoho_calls = per_client.get(self.client_ids.get(name, ""), 0)
            versions = self.sm.list_secret_version_ids(
                SecretId=f"{PREFIX}{name}/access-token", IncludeDeprecated=True, MaxResults=100
            )
            report.secret_versions = len(versions["Versions"])
            for cause, first in report.first_expired_minute.items():
                preceded = any(m < first for m in nearly)
                if cause == "unattributed" or not preceded:
                    violations.append(
                        f"{name}: expired from +{first} min ({cause}) without a preceding alarm"
                    )
            if report.consumer_failures.get("unattributed"):
                violations.append(
                    f"{name}: {report.consumer_failures['unattributed']} unattributed consumer failures"
                )
            connections.append(
                {
                    "connection": name,
                    "dc": report.dc,
                    "refreshes": report.refreshes,
                    "zoho_token_calls": report.zoho_calls,
                    "consumer_calls": report.consumer_calls,
                    "consumer_failures": dict(report.consumer_failures),
                    "expired_minutes": dict(report.expired_minutes),
                    "revoked_minutes": report.revoked_minutes,
                    "alarms": dict(report.alarms),
                    "secret_versions_written": report.secret_versions,
                    "status": self.stored_status[name],
                }
            )
        days = self.minutes / 1440
        total_calls = sum(r.zoho_calls for r in self.reports.values())
        return {
            "schema": 1,
            "simulated_hours": self.minutes / 60,
            "wall_seconds": round(wall_seconds, 1),
            "connections": connections,
            "alarms_fired": {name: state.fired_at for name, state in self.alarms.items() if state.fired_at},
            "zoho_token_calls_per_connection_per_day": round(total_calls / len(connections) / days, 1)
            if days
            else None,
            "floor_per_connection_per_day": 24,
            "invariants_hold": not violations,
            "violations": violations,
        }


_ALARM_SHORT: Final = {
    "TokenNearlyExpired": "nearly-expired",
    "RefreshFailures": "failures",
    "ConnectionNeedsAction": "needs-action",
    "HealthProbeFailed": "probe",
}
_STATISTICS: Final[dict[str, Callable[[list[float]], float]]] = {"Sum": sum, "Maximum": max, "Minimum": min}


class LocalLambda:
    """The one Lambda call the consumer helper makes (``invoke``), served by the real handler in process:
    moto can only run Lambda functions with Docker, which the demo does not need."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        response = self.demo.invoke(json.loads(Payload))
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(response).encode())}


@contextlib.contextmanager
def _progress(total: int) -> Iterator[tuple[Any, Any]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} min"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        yield progress, progress.add_task("run", total=total)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"zoho-token-sync demo: {summary['simulated_hours']:g} simulated hours")
    for column in (
        "connection",
        "dc",
        "refreshes",
        "Zoho calls",
        "consumer calls",
        "failed calls",
        "expired min",
        "alarms",
        "versions",
    ):
        table.add_column(
            column,
            justify="left"
            if column in ("connection", "dc", "failed calls", "expired min", "alarms")
            else "right",
        )
    for c in summary["connections"]:
        table.add_row(
            c["connection"],
            c["dc"],
            str(c["refreshes"]),
            str(c["zoho_token_calls"]),
            str(c["consumer_calls"]),
            _causes(c["consumer_failures"]),
            _causes(c["expired_minutes"]),
            ", ".join(
                _ALARM_SHORT.get(name, name) + (f" x{n}" if n > 1 else "") for name, n in c["alarms"].items()
            )
            or "0",
            str(c["secret_versions_written"]),
        )
    console = Console(highlight=False, width=max(120, Console().width))
    console.print(table)
    console.print(
        f"Zoho token calls: {summary['zoho_token_calls_per_connection_per_day']} per connection per day "
        f"(floor {summary['floor_per_connection_per_day']}; refresh-every-tick would be 144). "
        f"Wall time {summary['wall_seconds']} s."
    )
    if summary["invariants_hold"]:
        console.print(
            "[green]Invariants hold:[/green] every expired minute and failed call is attributed to an "
            "injected fault, and 'token nearly expired' fired before each expired stretch."
        )
    else:
        console.print("[red]Invariants violated:[/red]\n  " + "\n  ".join(summary["violations"]))


def _causes(counts: dict[str, int]) -> str:
    return "0" if not counts else "; ".join(f"{n} {cause}" for cause, n in counts.items())


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit code."""
    quiet = bool(args.json or args.quiet)
    try:
        demo = Demo(
            args.hours,
            args.connections,
            timeline=Timeline(not quiet),
            progress=not quiet and sys.stderr.isatty(),
        )
    except ValueError as err:
        print(f"zoho-token demo: {err}", file=sys.stderr)
        return 2
    with demo.world():
        summary = demo.run()
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            _print_summary(summary)
        if args.serve:
            _serve(demo)
    return 0 if summary["invariants_hold"] else 1


def _serve(demo: Demo) -> None:
    demo.clock.follow_real_time()
    from lambda_refresh import service

    service.reset()
    exports = {
        "AWS_ENDPOINT_URL": demo.moto.url,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ZOHO_ALLOW_LOCAL_ACCOUNTS": "true",
        "ZOHO_SECRET_PREFIX": PREFIX,
    }
    print("\nmoto and the Zoho simulators keep running. In another shell:\n")
    for key, value in exports.items():
        print(f"export {key}={value}")
    print("zoho-token status")
    print(f"zoho-token audit --log-group {LOG_GROUP}")
    print(f"zoho-token refresh --connection {demo.names[0]} --force")
    for dc, sim in demo.sims.items():
        print(f"# {dc} accounts server: {sim.url}")
    print("\nCtrl-C stops them.", flush=True)
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        time.sleep(0.2)
