"""README command 1's job, shortened to 6 simulated hours, through the real console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

# Every token, refresh token and grant code the simulator issues has this shape; none may be printed.
ZOHO_SECRET_SHAPE = re.compile(r"1000\.[0-9a-f]{32}\.[0-9a-f]{32}")


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("zoho-token")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "ZOHO_"))}
    return subprocess.run(  # noqa: S603 - our own console script
        [str(script), "demo", *args], capture_output=True, text=True, timeout=240, env=env, check=False
    )


def test_six_hour_demo_keeps_its_invariants() -> None:
    done = run_demo("--hours", "6", "--json")

    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["invariants_hold"], summary["violations"]
    assert summary["simulated_hours"] == 6
    connections = {c["connection"]: c for c in summary["connections"]}
    assert set(connections) == {"crm-eu", "crm-us", "crm-in"}
    for report in connections.values():
        assert report["consumer_calls"] == 6 * 60 + 1
        assert report["refreshes"] >= 3  # about one per 50 minutes, fewer while a fault lasts
        assert "unattributed" not in report["expired_minutes"]
        assert "unattributed" not in report["consumer_failures"]
        assert report["status"] == "ok"  # everything recovered by the end, the revoked one re-bootstrapped
    # The injected faults really happened and were attributed.
    assert connections["crm-eu"]["expired_minutes"].get("outage", 0) > 0
    assert connections["crm-eu"]["consumer_failures"].get("revocation", 0) > 0
    assert summary["alarms_fired"]["TokenNearlyExpired"]
    assert summary["alarms_fired"]["ConnectionNeedsAction"]
    assert not ZOHO_SECRET_SHAPE.search(done.stdout + done.stderr)


def test_human_output_has_a_timeline_and_a_summary_table() -> None:
    done = run_demo("--hours", "2", "--connections", "4")

    assert done.returncode == 0, done.stderr[-2000:]
    assert "bootstrapped" in done.stdout
    assert "zoho-token-sync demo: 2 simulated hours" in done.stdout
    assert "books-eu" in done.stdout  # the 4th connection
    assert not ZOHO_SECRET_SHAPE.search(done.stdout + done.stderr)


def test_bad_arguments_exit_2() -> None:
    done = run_demo("--connections", "0")
    assert done.returncode == 2
    assert "--connections" in done.stderr
