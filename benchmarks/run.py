"""Benchmarks: each figure printed beside the floor it is measured against, in the same run.

    .venv/bin/python -m benchmarks.run            # everything (about a minute)
    .venv/bin/python -m benchmarks.run calls import fleet

Figures, not assertions: the test suite never times anything.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Before lambda_refresh is imported: quiet logs, no metrics output, never a real AWS account.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "ZOHO_ALLOW_LOCAL_ACCOUNTS": "true",
    }
)


@contextlib.contextmanager
def local_world(
    connections: int, *, latency: float = 0.0, clock: Callable[[], float] | None = None
) -> Iterator[Any]:
    """moto + one simulator, ``connections`` bootstrapped connections, the function's environment."""
    import boto3

    from lambda_refresh.models import Credentials
    from lambda_refresh.zoho import ZohoAccountsClient
    from zoho_token.local import MotoServer, create_deployed_secrets
    from zoho_token.simulator import ZohoSimulator

    with MotoServer() as aws, ZohoSimulator("eu", clock=clock) as sim:
        aws.reset()  # moto's backends are per process: start from nothing
        os.environ["AWS_ENDPOINT_URL"] = aws.url
        sm = boto3.client("secretsmanager")
        # One simulated user and client for every connection: lift Zoho's 20-refresh-token cap first, or
        # the 21st bootstrap would silently delete the first connection's refresh token.
        sim.settings.refresh_token_cap = connections + 1
        names = [f"conn-{i:04d}" for i in range(connections)]
        client_id, client_secret = sim.register_client()
        accounts = ZohoAccountsClient(sim.url, allow_local=True)
        for name in names:
            create_deployed_secrets(sm, name, "eu")
            grant = accounts.exchange_grant_code(client_id, client_secret, sim.issue_grant_code(client_id))
            assert grant.refresh_token is not None
            creds = Credentials(
                client_id=client_id,
                client_secret=client_secret,
                refresh_token=grant.refresh_token,
                dc="eu",
                accounts_url=sim.url,
                api_domain=grant.api_domain,
                scope=grant.scope,
                issued_at=datetime.now(UTC),
            )
            sm.put_secret_value(SecretId=f"zoho/{name}/credentials", SecretString=creds.to_secret_string())
        os.environ["ZOHO_CONNECTIONS"] = ",".join(names)
        sim.settings.latency_seconds = latency
        yield sim, sm


def invoke_handler(event: dict[str, Any]) -> dict[str, Any]:
    from lambda_refresh.handler import lambda_handler
    from zoho_token.local import LocalLambdaContext

    with contextlib.redirect_stdout(io.StringIO()):
        result: dict[str, Any] = lambda_handler(
            event, LocalLambdaContext("zoho-token-refresher-bench", 900_000)
        )
    return result


# ---------------------------------------------------------------------------------------------------------


def bench_calls() -> None:
    """Zoho token calls per connection per day with the 10-minute schedule and 15-minute margin."""
    from lambda_refresh import service
    from zoho_token.simulator import SimClock

    clock = SimClock()
    connections, hours = 10, 24
    with local_world(connections, clock=clock) as (sim, _sm):
        service.reset(clock=lambda: datetime.fromtimestamp(clock(), UTC))
        before = sim.stats.token_requests["refresh_token"]
        for _ in range(hours * 6):
            invoke_handler({})
            clock.advance(600)
        calls = sim.stats.token_requests["refresh_token"] - before
        service.reset()
    per_day = calls / connections / (hours / 24)
    print(f"Zoho token calls per connection per day: {per_day:.1f}")
    print(
        f"  vs floor 24 (1 h tokens): {per_day / 24:.2f}x   vs refresh-every-tick 144: {per_day / 144:.2f}x"
    )


def bench_consumer() -> None:
    """GetSecretValue calls per warm consumer per hour, consumer calling every 10 simulated seconds."""
    import boto3

    from lambda_refresh import consumer, service
    from zoho_token.simulator import SimClock

    clock = SimClock()
    hours = 24
    with local_world(1, clock=clock) as (_sim, _sm):
        now = lambda: datetime.fromtimestamp(clock(), UTC)  # noqa: E731
        service.reset(clock=now)
        consumer.use_clock(now)
        client = boto3.client("secretsmanager")
        reads = 0

        def count(**_kwargs: Any) -> None:
            nonlocal reads
            reads += 1

        client.meta.events.register("before-call.secrets-manager.GetSecretValue", count)
        invoke_handler({})
        for second in range(0, hours * 3600, 10):
            if second % 600 == 0:
                invoke_handler({})
            consumer.get_access_token("conn-0000", secretsmanager_client=client)
            clock.advance(10)
        consumer.use_clock(None)
        service.reset()
    per_hour = reads / hours
    print(f"GetSecretValue per warm consumer per hour: {per_hour:.2f} (floor 1: {per_hour:.2f}x)")
    print(
        "  vs Powertools get_secret (max_age 300 s) and the Parameters and Secrets extension (TTL 300 s): "
        f"12 per hour each by their defaults -> {per_hour / 12:.2f}x of theirs"
    )


def _import_seconds(statement: str, *, tracing: bool = True, runs: int = 7) -> float:
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true"}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT, env=env)  # noqa: S603 - fixed argv
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_import() -> None:
    """Cold import of the handler module vs the two libraries any refresher would import anyway."""
    bare = _import_seconds("pass")
    baseline = _import_seconds("import boto3, requests") - bare
    traced = _import_seconds("import lambda_refresh.handler") - bare
    untraced = _import_seconds("import lambda_refresh.handler", tracing=False) - bare
    print(f"cold import, median of 7 processes, interpreter start ({bare * 1000:.0f} ms) subtracted:")
    print(f"  import boto3, requests:                  {baseline * 1000:.0f} ms (1.00x)")
    print(f"  lambda_refresh.handler, tracing on:      {traced * 1000:.0f} ms ({traced / baseline:.2f}x)")
    print(f"  lambda_refresh.handler, tracing off:     {untraced * 1000:.0f} ms ({untraced / baseline:.2f}x)")


def bench_fleet(connections: int = 1000, latency: float = 0.2) -> None:
    """One invocation refreshing every connection against a Zoho with 200 ms latency."""
    from lambda_refresh import service

    with local_world(connections) as (sim, _sm):
        service.reset()
        sim.settings.latency_seconds = latency
        started = time.perf_counter()
        response = invoke_handler({})
        wall = time.perf_counter() - started
        refreshed = sum(r["outcome"] == "refreshed" for r in response["results"])
        concurrency = service.get_refresher().settings.concurrency
        service.reset()
    floor = connections * latency / concurrency
    print(
        f"{connections} connections, {latency * 1000:.0f} ms Zoho latency, concurrency {concurrency}: "
        f"{refreshed} refreshed in {wall:.1f} s vs floor {floor:.1f} s ({wall / floor:.2f}x)"
    )


def bench_asset() -> None:
    """Size of what the Lambda asset holds (lambda_refresh + its bundled packages)."""
    parts = {"lambda_refresh": ROOT / "lambda_refresh", "dependencies": ROOT / ".build" / "lambda-deps"}
    total = 0
    for label, path in parts.items():
        if not path.exists():
            print(f"asset: {path} missing (run scripts/setup.sh test)")
            return
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        total += size
        print(f"asset {label}: {size / 1024:.0f} KiB")
    print(
        f"asset total (unzipped): {total / 1024 / 1024:.2f} MiB vs Lambda's 250 MiB limit ({total / (250 * 1024 * 1024):.1%})"
    )


BENCHES: dict[str, Callable[[], None]] = {
    "calls": bench_calls,
    "consumer": bench_consumer,
    "import": bench_import,
    "fleet": bench_fleet,
    "asset": bench_asset,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", nargs="*", choices=[*BENCHES, []], help="benchmarks to run (default: all)")
    names = parser.parse_args().which or list(BENCHES)
    for name in names:
        print(f"== {name}", flush=True)
        BENCHES[name]()


if __name__ == "__main__":
    main()
