"""Shared fixtures: a moto server and Zoho simulators on loopback, fake AWS credentials, the leak guard.

Nothing here may reach AWS or Zoho: AWS_ENDPOINT_URL points every boto3 client at the local moto server
and the credentials are fake, so a forgotten endpoint fails instead of calling a real account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from tests import leakguard
from tests.support import MotoServer

# Before anything creates a boto3 session: fake credentials, a fixed region, no shared config files.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """A clean moto server for this test, with AWS_ENDPOINT_URL pointing at it."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    return moto_server


@pytest.fixture
def secretsmanager(aws: MotoServer):
    return boto3.client("secretsmanager", endpoint_url=aws.url, region_name="us-east-1")


@pytest.fixture
def zoho_clock():
    from zoho_token.simulator import SimClock

    return SimClock()


@pytest.fixture
def zoho(zoho_clock):
    """A simulated EU accounts server on loopback; every secret it issued is registered with the guard."""
    from zoho_token.simulator import ZohoSimulator

    sim = ZohoSimulator("eu", clock=zoho_clock)
    sim.start()
    yield sim
    leakguard.register_all(sim.issued_secrets())
    sim.stop()


@pytest.fixture
def zoho_us(zoho_clock):
    from zoho_token.simulator import ZohoSimulator

    sim = ZohoSimulator("us", clock=zoho_clock)
    sim.start()
    yield sim
    leakguard.register_all(sim.issued_secrets())
    sim.stop()
