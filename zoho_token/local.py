"""Local stand-ins for AWS: moto's server on loopback, for the demo, ``--serve`` and the tests."""

from __future__ import annotations

import logging
import socket
import time
from types import TracebackType
from typing import Any

import requests

from lambda_refresh.models import credentials_placeholder, initial_access_token


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound and released; fine for local tooling)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """moto's server on 127.0.0.1 and a free port.

    Example::

        with MotoServer() as aws:
            os.environ["AWS_ENDPOINT_URL"] = aws.url
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request line to stderr; the demo and benchmarks print their own story.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> MotoServer:
        self._server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("moto server did not start within 10 s")

    def reset(self) -> None:
        """Forget every resource (between tests)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=5).raise_for_status()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LocalLambdaContext:
    """The Lambda context attributes Powertools reads, for running the real handler in process (the
    demo, the benchmarks and the tests), with a fixed time budget."""

    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, function_name: str = "zoho-token-refresher", remaining_ms: int = 300_000) -> None:
        self.function_name = function_name
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


def create_deployed_secrets(
    sm: Any, name: str, dc: str, *, prefix: str = "zoho/", kms_key_id: str | None = None
) -> None:
    """Create both secrets of a connection as the CDK construct does: placeholder credentials and a
    pending access token (used by the demo and tests in place of ``cdk deploy``). ``dc`` is the DC the
    deployment config names; like the construct, nothing DC-specific is written before the bootstrap."""
    del dc
    extra = {"KmsKeyId": kms_key_id} if kms_key_id else {}
    sm.create_secret(Name=f"{prefix}{name}/credentials", SecretString=credentials_placeholder(name), **extra)
    sm.create_secret(Name=f"{prefix}{name}/access-token", SecretString=initial_access_token(), **extra)
