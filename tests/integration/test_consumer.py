"""lambda_refresh.consumer against a real moto server (Secrets Manager) and a stubbed Lambda client.

GetSecretValue calls are counted with a botocore hook on the client handed to the consumer, i.e. the
real requests that reach the server. Lambda invokes are scripted with botocore's own Stubber (running
functions in moto would need docker); a hook on the stubbed client plays the refresher by writing a new
token into moto, so every read still goes to the server.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto.server import ThreadedMotoServer

from lambda_refresh import consumer
from lambda_refresh.consumer import (
    AccessToken,
    TokenExpiredError,
    TokenMisconfiguredError,
    TokenPendingError,
    TokenRefreshError,
    TokenRevokedError,
    TokenUnavailableError,
    ZohoTokenError,
    clear_cache,
    get_access_token,
    request_refresh,
)
from tests import leakguard

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

REGION = "us-east-1"
FUNCTION = "zoho-token-refresher"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


# ------------------------------------------------------------------------------------------ fixtures
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in FAKE_CREDENTIALS.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "ZOHO_REFRESH_FUNCTION"):
            mp.delenv(name, raising=False)
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


class CountingClient:
    """A real boto3 Secrets Manager client on the moto server, counting GetSecretValue per SecretId."""

    def __init__(self, endpoint_url: str) -> None:
        self.client = boto3.session.Session().client(
            "secretsmanager",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.reads: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.gates: dict[str, threading.Event] = {}
        self.client.meta.events.register(
            "before-parameter-build.secrets-manager.GetSecretValue", self._before_read
        )

    def _before_read(self, params: dict[str, Any], **_: Any) -> None:
        secret_id = params["SecretId"]
        with self._count_lock:
            self.reads[secret_id] += 1
        gate = self.gates.get(secret_id)
        if gate is not None:
            assert gate.wait(5), "test gate never opened"

    def put(
        self,
        connection: str,
        *,
        token: str | None,
        expires_in: float = 3600,
        status: str = "ok",
        error: Any = None,
        raw: str | None = None,
        **extra: Any,
    ) -> str:
        name = f"zoho/{connection}/access-token"
        now = datetime.now(UTC)
        body = {
            "schema": 1,
            "access_token": token,
            "token_type": "Zoho-oauthtoken",
            "api_domain": "https://www.zohoapis.eu",
            "dc": "eu",
            "scope": "ZohoCRM.modules.ALL",
            "expires_at": (now + timedelta(seconds=expires_in)).isoformat().replace("+00:00", "Z")
            if token
            else None,
            "refreshed_at": now.isoformat().replace("+00:00", "Z"),
            "status": status,
            "error": error,
            "credentials_version": "v-1",
            **extra,
        }
        value = raw if raw is not None else json.dumps(body)
        try:
            self.client.put_secret_value(SecretId=name, SecretString=value)
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_secret(Name=name, SecretString=value)
        return name


@pytest.fixture(scope="module")
def sm(endpoint: str) -> CountingClient:
    return CountingClient(endpoint)


@pytest.fixture(scope="module", autouse=True)
def _quiet_botocore() -> Iterator[None]:
    """The harness writes tokens with PutSecretValue, which botocore.endpoint logs at DEBUG."""
    botocore_log = logging.getLogger("botocore")
    level = botocore_log.level
    botocore_log.setLevel(logging.WARNING)
    yield
    botocore_log.setLevel(level)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def conn() -> str:
    return f"crm-{uuid.uuid4().hex[:12]}"


def _token() -> str:
    token = f"1000.SECRETTOKEN{uuid.uuid4().hex}"
    leakguard.register(token)  # the suite fails any test whose output or logs show it
    return token


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _no_leak(err: BaseException, *tokens: str) -> None:
    texts = [str(err), repr(err)]
    cause = err.__cause__ or err.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    for token in tokens:
        assert all(token not in text for text in texts)
        assert all(token[5:] not in text for text in texts)


# ------------------------------------------------------------------------------------------ reading
def test_returns_token_fields_and_hides_it(sm: CountingClient, conn: str) -> None:
    token = _token()
    sm.put(conn, token=token, unknown_future_field={"x": 1})
    got = get_access_token(conn, secretsmanager_client=sm.client)
    assert got.token == token
    assert got.authorization_header == f"Zoho-oauthtoken {token}"
    assert got.api_domain == "https://www.zohoapis.eu"
    assert got.dc == "eu"
    assert got.scope == "ZohoCRM.modules.ALL"
    assert got.status == "ok"
    assert got.expires_at.tzinfo is not None
    assert got.expires_at.utcoffset() == timedelta(0)
    assert 3500 < (got.expires_at - datetime.now(UTC)).total_seconds() <= 3600
    assert got.sha256 == _sha(token)
    for text in (repr(got), str(got), f"{got}", f"{got!r}"):
        assert token not in text
        assert token[5:] not in text
        assert _sha(token)[:12] in text


def test_cache_hit_then_second_read_after_validity_window(sm: CountingClient, conn: str) -> None:
    first = _token()
    # Valid for min_validity + 0.4 s: cached until then, then due for a re-read.
    name = sm.put(conn, token=first, expires_in=60.4)
    got = get_access_token(conn, min_validity_seconds=60, secretsmanager_client=sm.client)
    for _ in range(20):
        assert get_access_token(conn, min_validity_seconds=60, secretsmanager_client=sm.client) is got
    assert sm.reads[name] == 1

    second = _token()
    sm.put(conn, token=second)
    due = got.expires_at - timedelta(seconds=60)
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.02)
    assert get_access_token(conn, min_validity_seconds=60, secretsmanager_client=sm.client).token == second
    assert sm.reads[name] == 2
    get_access_token(conn, min_validity_seconds=60, secretsmanager_client=sm.client)
    assert sm.reads[name] == 2

    clear_cache()
    get_access_token(conn, secretsmanager_client=sm.client)
    assert sm.reads[name] == 3


def test_cache_window_follows_each_callers_min_validity(sm: CountingClient, conn: str) -> None:
    first, second = _token(), _token()
    name = sm.put(conn, token=first, expires_in=1000)
    assert get_access_token(conn, min_validity_seconds=300, secretsmanager_client=sm.client).token == first
    sm.put(conn, token=second, expires_in=3600)
    # The cached token still has ~1000 s: enough for 900, not for 1200 (a re-read, the newer token).
    assert get_access_token(conn, min_validity_seconds=900, secretsmanager_client=sm.client).token == first
    assert sm.reads[name] == 1
    assert get_access_token(conn, min_validity_seconds=1200, secretsmanager_client=sm.client).token == second
    assert sm.reads[name] == 2
    assert get_access_token(conn, secretsmanager_client=sm.client).token == second
    assert sm.reads[name] == 2


def test_cache_is_per_prefix_and_connection(sm: CountingClient, conn: str) -> None:
    token = _token()
    name = sm.put(conn, token=token)
    get_access_token(conn, secretsmanager_client=sm.client)
    with pytest.raises(TokenMisconfiguredError, match=f"other/{conn}/access-token not found"):
        get_access_token(conn, prefix="other/", secretsmanager_client=sm.client)
    assert sm.reads[name] == 1
    assert sm.reads[f"other/{conn}/access-token"] == 1


def test_32_threads_make_one_read_and_share_the_token(sm: CountingClient, conn: str) -> None:
    token = _token()
    name = sm.put(conn, token=token)
    barrier = threading.Barrier(32)
    results: list[AccessToken] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(get_access_token(conn, secretsmanager_client=sm.client))
        except ZohoTokenError as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert len(results) == 32
    assert {r.token for r in results} == {token}
    assert sm.reads[name] == 1


def test_concurrent_errors_are_shared_too(sm: CountingClient, conn: str) -> None:
    name = sm.put(conn, token=None, status="pending")
    gate = sm.gates[name] = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            get_access_token(conn, secretsmanager_client=sm.client)
        except ZohoTokenError as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)  # let them all queue behind the gated read
    gate.set()
    for thread in threads:
        thread.join(10)
    del sm.gates[name]
    assert len(errors) == 8
    assert all(isinstance(err, TokenPendingError) for err in errors)
    assert len({id(err) for err in errors}) == 8  # each thread raises its own copy
    assert sm.reads[name] == 1


def test_a_slow_read_does_not_block_other_connections(sm: CountingClient, conn: str) -> None:
    other = f"{conn}-b"
    slow_name = sm.put(conn, token=_token())
    fast_token = _token()
    sm.put(other, token=fast_token)
    gate = sm.gates[slow_name] = threading.Event()
    done = threading.Event()

    def slow() -> None:
        get_access_token(conn, secretsmanager_client=sm.client)
        done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        assert get_access_token(other, secretsmanager_client=sm.client).token == fast_token
        assert time.monotonic() - started < 1.0
        assert not done.is_set()
    finally:
        gate.set()
        thread.join(10)
        del sm.gates[slow_name]
    assert done.is_set()


def test_botocore_debug_logging_does_not_print_the_token(
    sm: CountingClient, conn: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = _token()
    sm.put(conn, token=token)
    assert logging.getLogger("botocore.parsers").level == logging.INFO  # set by importing consumer
    botocore_log = logging.getLogger("botocore")
    botocore_log.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            got = get_access_token(conn, secretsmanager_client=sm.client)
    finally:
        botocore_log.setLevel(logging.WARNING)
    assert got.token == token
    assert "GetSecretValue" in caplog.text  # botocore did log at DEBUG...
    assert token not in caplog.text  # ...but not the response body


def test_default_client_honours_endpoint_env(
    sm: CountingClient, conn: str, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _token()
    sm.put(conn, token=token)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    consumer._reset_clients()
    try:
        assert get_access_token(conn).token == token
    finally:
        consumer._reset_clients()


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("bad", ["", "CRM", "-crm", "crm_eu", "crm eu", "a" * 64, "crm\n", "../x"])
def test_rejects_bad_connection_names(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid Zoho connection name"):
        get_access_token(bad)


def test_revoked(sm: CountingClient, conn: str) -> None:
    token = _token()
    sm.put(
        conn,
        token=token,
        status="revoked",
        error={"code": "invalid_code", "message": "refresh token revoked", "since": "2026-11-25T15:00:00Z"},
    )
    with pytest.raises(TokenRevokedError) as info:
        get_access_token(conn, secretsmanager_client=sm.client)
    assert f"zoho-token bootstrap --connection {conn} --replace" in str(info.value)
    assert info.value.error_code == "invalid_code"
    assert info.value.status == "revoked"
    _no_leak(info.value, token)


def test_revoked_evicts_cached_token(sm: CountingClient, conn: str) -> None:
    token = _token()
    sm.put(conn, token=token)
    get_access_token(conn, secretsmanager_client=sm.client)
    sm.put(conn, token=token, status="revoked", error={"code": "invalid_code", "message": "x"})
    with pytest.raises(TokenRevokedError):
        request_refresh(
            conn,
            invalid_token=_token(),  # a token other than the stored one: only re-reads
            function_name=FUNCTION,
            secretsmanager_client=sm.client,
            lambda_client=_lambda_client(),
        )
    with pytest.raises(TokenRevokedError):
        get_access_token(conn, secretsmanager_client=sm.client)


def test_misconfigured_status(sm: CountingClient, conn: str) -> None:
    token = _token()
    name = sm.put(
        conn,
        token=token,
        status="misconfigured",
        error={"code": "invalid_client", "message": f"wrong DC? {token}"},
    )
    with pytest.raises(TokenMisconfiguredError) as info:
        get_access_token(conn, secretsmanager_client=sm.client)
    assert name in str(info.value)
    assert "invalid_client" in str(info.value)
    assert "<redacted>" in str(info.value)
    _no_leak(info.value, token)


def test_pending_without_token(sm: CountingClient, conn: str) -> None:
    sm.put(conn, token=None, status="pending")
    with pytest.raises(TokenPendingError, match=f"zoho-token bootstrap --connection {conn}"):
        get_access_token(conn, secretsmanager_client=sm.client)


def test_pending_with_a_valid_bootstrap_token_is_usable(sm: CountingClient, conn: str) -> None:
    token = _token()
    sm.put(conn, token=token, status="pending")
    assert get_access_token(conn, secretsmanager_client=sm.client).status == "pending"


def test_failing_with_valid_token_returns_it(sm: CountingClient, conn: str) -> None:
    token = _token()
    sm.put(conn, token=token, status="failing", error={"code": "timeout", "message": "Zoho slow"})
    got = get_access_token(conn, secretsmanager_client=sm.client)
    assert got.token == token
    assert got.status == "failing"


def test_expired_even_after_fresh_read(sm: CountingClient, conn: str) -> None:
    token = _token()
    name = sm.put(
        conn,
        token=token,
        expires_in=100,
        status="failing",
        error={"code": "Access Denied", "message": "too many requests"},
    )
    with pytest.raises(TokenExpiredError) as info:
        get_access_token(conn, min_validity_seconds=300, secretsmanager_client=sm.client)
    text = str(info.value)
    assert "status failing" in text
    assert "Access Denied: too many requests" in text
    assert name in text
    _no_leak(info.value, token)
    # Still good enough for a caller that needs less.
    assert get_access_token(conn, min_validity_seconds=30, secretsmanager_client=sm.client).token == token

    sm.put(conn, token=token, expires_in=-10, status="failing")
    clear_cache()
    with pytest.raises(TokenExpiredError, match="expired at"):
        get_access_token(conn, min_validity_seconds=0, secretsmanager_client=sm.client)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ('{"schema": 1, "access_token": "1000.SECRETTOKENabc", ', "not valid JSON"),
        ('["1000.SECRETTOKENabc"]', "not a JSON object"),
        ('{"schema": 2, "access_token": "1000.SECRETTOKENabc", "status": "ok"}', "schema 2"),
        ('{"schema": 1, "access_token": "1000.SECRETTOKENabc"}', "no 'status'"),
        ('{"schema": 1, "status": "ok"}', "no 'access_token'"),
        (
            '{"schema": 1, "access_token": "1000.SECRETTOKENabc", "status": "ok", '
            '"api_domain": "https://www.zohoapis.eu"}',
            "no valid ISO-8601 'expires_at'",
        ),
        (
            '{"schema": 1, "access_token": "1000.SECRETTOKENabc", "status": "ok", '
            '"expires_at": "2099-01-01T00:00:00"}',
            "no valid ISO-8601 'expires_at'",
        ),
        (
            '{"schema": 1, "access_token": "1000.SECRETTOKENabc", "status": "ok", '
            '"expires_at": "2099-01-01T00:00:00Z"}',
            "no 'api_domain'",
        ),
    ],
)
def test_malformed_secret(sm: CountingClient, conn: str, raw: str, match: str) -> None:
    name = sm.put(conn, token=None, raw=raw)
    with pytest.raises(TokenMisconfiguredError, match=match) as info:
        get_access_token(conn, secretsmanager_client=sm.client)
    assert name in str(info.value)
    _no_leak(info.value, "1000.SECRETTOKENabc")


def test_missing_secret(sm: CountingClient, conn: str) -> None:
    with pytest.raises(TokenMisconfiguredError) as info:
        get_access_token(conn, secretsmanager_client=sm.client)
    assert f"zoho/{conn}/access-token not found" in str(info.value)
    assert info.value.aws_error_code == "ResourceNotFoundException"
    assert isinstance(info.value, ZohoTokenError)


def test_aws_errors_are_wrapped(conn: str) -> None:
    client = boto3.session.Session().client(
        "secretsmanager", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", "AccessDeniedException", "not allowed", 400)
        with pytest.raises(TokenUnavailableError) as info:
            get_access_token(conn, secretsmanager_client=client)
    assert info.value.aws_error_code == "AccessDeniedException"
    assert f"zoho/{conn}/access-token" in str(info.value)
    assert info.value.__cause__ is not None


# ------------------------------------------------------------------------------------------ refresh
_LAMBDA_SESSION = boto3.session.Session()  # one session: its loader caches the service model


def _lambda_client() -> LambdaClient:
    return _LAMBDA_SESSION.client(
        "lambda", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _payload(body: Any) -> StreamingBody:
    raw = json.dumps(body).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _ok(conn: str, outcome: str = "refreshed", error: Any = None) -> dict[str, Any]:
    result = {"connection": conn, "outcome": outcome, "expires_at": "2099-01-01T00:00:00Z", "error": error}
    return {"StatusCode": 200, "Payload": _payload({"results": [result]})}


class Refresher:
    """Records the invoke payloads; optionally writes a new token into moto as the refresher would."""

    def __init__(self, client: LambdaClient, sm: CountingClient, conn: str, new_token: str | None) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.invocation_types: list[str] = []
        self.sm, self.conn, self.new_token = sm, conn, new_token
        # Runs before the Stubber answers the call (it answers in before-call).
        client.meta.events.register("before-parameter-build.lambda.Invoke", self._invoked)

    def _invoked(self, params: dict[str, Any], **_: Any) -> None:
        self.payloads.append(json.loads(params["Payload"]))
        self.invocation_types.append(params["InvocationType"])
        if self.new_token is not None:
            self.sm.put(self.conn, token=self.new_token)


def test_request_refresh_success(sm: CountingClient, conn: str) -> None:
    old, new = _token(), _token()
    name = sm.put(conn, token=old)
    stale = get_access_token(conn, secretsmanager_client=sm.client)
    client = _lambda_client()
    refresher = Refresher(client, sm, conn, new)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            _ok(conn),
            {"FunctionName": FUNCTION, "InvocationType": "RequestResponse", "Payload": ANY},
        )
        got = request_refresh(
            conn,
            invalid_token=stale,
            function_name=FUNCTION,
            lambda_client=client,
            secretsmanager_client=sm.client,
        )
        stub.assert_no_pending_responses()
    assert got.token == new
    assert refresher.payloads == [{"connection": conn, "force": True, "invalid_token_sha256": _sha(old)}]
    reads = sm.reads[name]
    assert get_access_token(conn, secretsmanager_client=sm.client).token == new  # cached by the refresh
    assert sm.reads[name] == reads


def test_request_refresh_takes_function_from_env_and_string_token(
    sm: CountingClient, conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = _token(), _token()
    sm.put(conn, token=old)
    monkeypatch.setenv("ZOHO_REFRESH_FUNCTION", "from-env")
    client = _lambda_client()
    refresher = Refresher(client, sm, conn, new)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke", _ok(conn), {"FunctionName": "from-env", "InvocationType": ANY, "Payload": ANY}
        )
        got = request_refresh(conn, invalid_token=old, lambda_client=client, secretsmanager_client=sm.client)
    assert got.token == new
    assert refresher.payloads[0]["invalid_token_sha256"] == _sha(old)


def test_request_refresh_without_function_name(conn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZOHO_REFRESH_FUNCTION", raising=False)
    with pytest.raises(TokenRefreshError, match="ZOHO_REFRESH_FUNCTION"):
        request_refresh(conn, invalid_token="1000.x")


def test_request_refresh_already_replaced_needs_no_invoke(sm: CountingClient, conn: str) -> None:
    old, current = _token(), _token()
    sm.put(conn, token=current)
    client = _lambda_client()
    with Stubber(client) as stub:  # no responses queued: an invoke would fail the test
        got = request_refresh(
            conn,
            invalid_token=old,
            function_name=FUNCTION,
            lambda_client=client,
            secretsmanager_client=sm.client,
        )
        stub.assert_no_pending_responses()
    assert got.token == current


def test_request_refresh_throttled_then_token_changes(sm: CountingClient, conn: str) -> None:
    old, new = _token(), _token()
    sm.put(conn, token=old)
    client = _lambda_client()
    refresher = Refresher(client, sm, conn, None)

    def scheduled_run_finishes() -> None:
        time.sleep(0.2)
        sm.put(conn, token=new)

    writer = threading.Thread(target=scheduled_run_finishes)
    with Stubber(client) as stub:
        for _ in range(40):
            stub.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
        writer.start()
        started = time.monotonic()
        got = request_refresh(
            conn,
            invalid_token=old,
            function_name=FUNCTION,
            timeout_seconds=5,
            lambda_client=client,
            secretsmanager_client=sm.client,
        )
        elapsed = time.monotonic() - started
    writer.join()
    assert got.token == new
    assert 0.15 < elapsed < 2.5
    assert 1 <= len(refresher.payloads) < 40  # throttled invokes are retried while polling


def test_request_refresh_throttled_until_timeout(sm: CountingClient, conn: str) -> None:
    old = _token()
    sm.put(conn, token=old)
    client = _lambda_client()
    with Stubber(client) as stub:
        for _ in range(40):
            stub.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
        started = time.monotonic()
        with pytest.raises(TokenRefreshError, match=r"timeout_seconds=0\.3") as info:
            request_refresh(
                conn,
                invalid_token=old,
                function_name=FUNCTION,
                timeout_seconds=0.3,
                lambda_client=client,
                secretsmanager_client=sm.client,
            )
        elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 1.5
    _no_leak(info.value, old)


def test_request_refresh_function_error_reports_type_only(sm: CountingClient, conn: str) -> None:
    old = _token()
    sm.put(conn, token=old)
    client = _lambda_client()
    body = {"errorType": "KeyError", "errorMessage": f"client_secret=SUPERSECRET {old}", "stackTrace": []}
    with Stubber(client) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _payload(body)}
        )
        with pytest.raises(TokenRefreshError, match="KeyError") as info:
            request_refresh(
                conn,
                invalid_token=old,
                function_name=FUNCTION,
                lambda_client=client,
                secretsmanager_client=sm.client,
            )
    assert "SUPERSECRET" not in str(info.value)
    _no_leak(info.value, old)


def test_request_refresh_refused_keeps_token(sm: CountingClient, conn: str) -> None:
    old = _token()
    sm.put(conn, token=old)
    client = _lambda_client()
    with Stubber(client) as stub:
        stub.add_response("invoke", _ok(conn, "failed", {"code": "rate_limited", "message": "budget used"}))
        with pytest.raises(TokenRefreshError, match="did not produce a new token") as info:
            request_refresh(
                conn,
                invalid_token=old,
                function_name=FUNCTION,
                lambda_client=client,
                secretsmanager_client=sm.client,
            )
    assert "outcome failed" in str(info.value)
    assert info.value.error_code == "rate_limited"
    _no_leak(info.value, old)


def test_request_refresh_other_aws_error(sm: CountingClient, conn: str) -> None:
    old = _token()
    sm.put(conn, token=old)
    client = _lambda_client()
    with Stubber(client) as stub:
        stub.add_client_error("invoke", "ResourceNotFoundException", "Function not found", 404)
        with pytest.raises(TokenUnavailableError) as info:
            request_refresh(
                conn,
                invalid_token=old,
                function_name=FUNCTION,
                lambda_client=client,
                secretsmanager_client=sm.client,
            )
    assert info.value.aws_error_code == "ResourceNotFoundException"
    assert FUNCTION in str(info.value)


def test_request_refresh_no_wait_sends_event_and_drops_cache(sm: CountingClient, conn: str) -> None:
    old = _token()
    name = sm.put(conn, token=old)
    stale = get_access_token(conn, secretsmanager_client=sm.client)
    client = _lambda_client()
    refresher = Refresher(client, sm, conn, None)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202, "Payload": _payload("")},
            {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": ANY},
        )
        result = request_refresh(
            conn, invalid_token=stale, function_name=FUNCTION, wait=False, lambda_client=client
        )
        stub.assert_no_pending_responses()
    assert result is None
    assert refresher.payloads[0]["force"] is True
    assert sm.reads[name] == 1
    get_access_token(conn, secretsmanager_client=sm.client)
    assert sm.reads[name] == 2  # the invalid token was dropped from the cache


def test_request_refresh_stampede_in_one_process_invokes_once(sm: CountingClient, conn: str) -> None:
    old, new = _token(), _token()
    sm.put(conn, token=old)
    client = _lambda_client()
    refresher = Refresher(client, sm, conn, new)
    results: list[AccessToken] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def consumer_thread() -> None:
        barrier.wait()
        try:
            results.append(
                request_refresh(
                    conn,
                    invalid_token=old,
                    function_name=FUNCTION,
                    lambda_client=client,
                    secretsmanager_client=sm.client,
                )
            )
        except ZohoTokenError as err:
            errors.append(err)

    with Stubber(client) as stub:
        stub.add_response("invoke", _ok(conn))
        threads = [threading.Thread(target=consumer_thread) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert not errors
    assert {r.token for r in results} == {new}
    assert len(refresher.payloads) == 1


def test_module_imports_only_stdlib_and_boto() -> None:
    import ast
    import sys

    path = consumer.__file__
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the file must stand alone"
            roots.add((node.module or "").split(".")[0])
    assert roots - set(sys.stdlib_module_names) <= {"boto3", "botocore"}
    assert os.path.basename(path) == "consumer.py"
