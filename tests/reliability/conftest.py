"""Fixtures and helpers of the reliability suite (the shared ones live in tests/conftest.py).

``lam`` runs the real Lambda handler like a warm container: :meth:`LambdaHarness.configure` sets the
function's environment and rebuilds the process-wide refresher on the simulator's clock (a cold start);
calls then reuse it, so botocore hooks registered on its client stay in place across ticks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from lambda_refresh import service
from lambda_refresh.handler import lambda_handler
from lambda_refresh.models import AccessTokenState, Credentials
from lambda_refresh.refresh import Refresher
from tests import leakguard
from zoho_token.local import LocalLambdaContext

CONN = "crm-eu"
TOKEN_SECRET = f"zoho/{CONN}/access-token"
CREDENTIALS_SECRET = f"zoho/{CONN}/credentials"


class LambdaHarness:
    """The refresher function in this process, on the simulator's clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], float]) -> None:
        self._monkeypatch = monkeypatch
        self._clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def configure(self, names: str | Sequence[str] = CONN, **env: str) -> None:
        """Set the environment and start a new 'container' (the next call builds a new refresher)."""
        joined = names if isinstance(names, str) else ",".join(names)
        self._monkeypatch.setenv("ZOHO_CONNECTIONS", joined)
        self._monkeypatch.setenv("ZOHO_ALLOW_LOCAL_ACCOUNTS", "true")
        self._monkeypatch.setenv("ZOHO_HTTP_TIMEOUT_SECONDS", "1")
        for key, value in env.items():
            self._monkeypatch.setenv(key, value)
        service.reset(clock=self.now)

    def __call__(self, event: Any = None) -> dict[str, Any]:
        response: dict[str, Any] = lambda_handler({} if event is None else event, LocalLambdaContext())
        json.dumps(response)  # Lambda returns it as JSON
        return response

    @property
    def refresher(self) -> Refresher:
        return service.get_refresher()

    @property
    def client(self) -> Any:
        """The refresher's own boto3 Secrets Manager client (for botocore event hooks)."""
        return service.get_refresher().store._client


@pytest.fixture
def lam(
    aws: Any, zoho_clock: Callable[[], float], monkeypatch: pytest.MonkeyPatch
) -> Iterator[LambdaHarness]:
    harness = LambdaHarness(monkeypatch, zoho_clock)
    harness.configure()
    yield harness
    service.reset()


# ---------------------------------------------------------------------------------------------------------
# Helpers


def only_result(response: dict[str, Any], name: str = CONN) -> dict[str, Any]:
    """The single result of a one-connection run (asserting there is exactly one)."""
    results = response["results"]
    assert [r["connection"] for r in results] == [name], response
    result: dict[str, Any] = results[0]
    return result


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF documents Powertools printed (lines with an ``_aws`` key)."""
    docs = []
    for line in stdout.splitlines():
        if '"_aws"' in line:
            doc = json.loads(line)
            if isinstance(doc, dict):
                docs.append(doc)
    return docs


def metric_values(stdout: str, name: str) -> list[float]:
    values: list[float] = []
    for doc in emf_documents(stdout):
        if name in doc:
            raw = doc[name]
            values.extend(float(v) for v in (raw if isinstance(raw, list) else [raw]))
    return values


def refresh_calls(sim: Any) -> int:
    return int(sim.stats.token_requests["refresh_token"])


def read_credentials(sm: Any, name: str = CONN) -> tuple[Credentials, str]:
    response = sm.get_secret_value(SecretId=f"zoho/{name}/credentials")
    return Credentials.from_secret_string(response["SecretString"]), str(response["VersionId"])


def new_credentials_version(sm: Any, name: str = CONN) -> str:
    """Write the same credentials again: a new VersionId, as an operator's re-bootstrap produces."""
    credentials, _ = read_credentials(sm, name)
    response = sm.put_secret_value(
        SecretId=f"zoho/{name}/credentials", SecretString=credentials.to_secret_string()
    )
    return str(response["VersionId"])


def assert_not_older(before: AccessTokenState, after: AccessTokenState) -> None:
    """The token invariant: the stored token is the previous one, or a newer one with a later expiry."""
    if before.access_token is None:
        return
    assert after.access_token is not None, "a stored token was lost"
    assert before.expires_at is not None
    assert after.expires_at is not None
    if after.access_token == before.access_token:
        assert after.expires_at == before.expires_at
    else:
        assert after.expires_at > before.expires_at, "the token regressed to an older one"
    leakguard.register(after.access_token)
