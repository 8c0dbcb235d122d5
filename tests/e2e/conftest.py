"""Fixtures of the CLI end-to-end tests: the ``cli`` runner bound to this test's moto server."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Cli


@pytest.fixture
def cli(aws, request: pytest.FixtureRequest) -> Cli:
    """``cli("status", "--json")`` runs the console script; output is scanned for every secret in play."""
    runner = Cli(aws.url)
    # The simulators this test uses (already created by its own fixture list) are scanned as they issue.
    for name in ("zoho", "zoho_us"):
        if name in request.fixturenames:
            runner.sims.append(request.getfixturevalue(name))
    return runner
