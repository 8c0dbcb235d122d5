"""lambda_refresh.store against a moto server: names, reads, compare-and-swap writes, wrapped AWS errors.

AWS failures are injected on botocore's real call path with a ``before-call`` hook: a hook that returns
``(http_response, parsed)`` replaces the HTTP exchange, and botocore then raises the modelled
``ClientError`` itself; a hook that raises stands for a transport failure (a ``BotoCoreError``).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError

from lambda_refresh.models import AccessTokenState, Credentials, NotBootstrappedError, Status
from lambda_refresh.store import (
    ConcurrentWriteError,
    SecretMissingError,
    SecretStore,
    StoreError,
    Versioned,
    cas_token,
)

CLIENT_SECRET = "fakeclientsecret-3b7c91d2-store"
REFRESH_TOKEN = "1000.fakerefresh.a9b8c7d6e5f4-store"
ACCESS_TOKEN = "1000.fakeaccess.0f1e2d3c4b5a-store"
T0 = datetime(2026, 11, 25, 15, 0, 0, tzinfo=UTC)
CONN = "crm-eu"


def credentials() -> Credentials:
    return Credentials(
        client_id="1000.FAKECLIENTID",
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        dc="eu",
        accounts_url="https://accounts.zoho.eu",
        api_domain="https://www.zohoapis.eu",
        scope="ZohoCRM.modules.ALL",
        issued_at=T0,
    )


def ok_state(token: str = ACCESS_TOKEN) -> AccessTokenState:
    return AccessTokenState(
        access_token=token,
        api_domain="https://www.zohoapis.eu",
        dc="eu",
        expires_at=T0 + timedelta(hours=1),
        refreshed_at=T0,
        status=Status.OK,
    )


def versions(sm: Any, name: str) -> list[dict[str, Any]]:
    return list(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"])


def current_version(sm: Any, name: str) -> str:
    return str(sm.get_secret_value(SecretId=name)["VersionId"])


def assert_no_value(err: BaseException, *values: str) -> None:
    texts = (str(err), repr(err), "".join(traceback.format_exception(err)))
    for value in values:
        for text in texts:
            assert value not in text


@pytest.fixture
def deployed(secretsmanager: Any) -> Any:
    """Both secrets of CONN as a deployment creates them: placeholder credentials, pending state."""
    secretsmanager.create_secret(
        Name=f"zoho/{CONN}/credentials", SecretString=json.dumps({"schema": 1, "bootstrapped": False})
    )
    secretsmanager.create_secret(
        Name=f"zoho/{CONN}/access-token", SecretString=AccessTokenState(dc="eu").to_secret_string()
    )
    return secretsmanager


# ---------------------------------------------------------------------------------------------------------
# Names


def test_secret_names_use_the_prefix() -> None:
    default = SecretStore(client=object(), prefix="zoho/")  # type: ignore[arg-type]
    assert default.credentials_name(CONN) == "zoho/crm-eu/credentials"
    assert default.access_token_name(CONN) == "zoho/crm-eu/access-token"
    custom = SecretStore(client=object(), prefix="acme/prod/zoho-")  # type: ignore[arg-type]
    assert custom.credentials_name("a1") == "acme/prod/zoho-a1/credentials"
    assert custom.access_token_name("a1") == "acme/prod/zoho-a1/access-token"
    assert custom.prefix == "acme/prod/zoho-"


def test_default_prefix_is_zoho() -> None:
    store = SecretStore(client=object())  # type: ignore[arg-type]
    assert store.prefix == "zoho/"


def test_custom_prefix_reads_its_own_secrets(secretsmanager: Any) -> None:
    secretsmanager.create_secret(
        Name="team-a/crm-eu/access-token", SecretString=ok_state().to_secret_string()
    )
    assert SecretStore(secretsmanager, prefix="team-a/").read_access_token(CONN).value == ok_state()
    with pytest.raises(SecretMissingError, match="zoho/crm-eu/access-token"):
        SecretStore(secretsmanager).read_access_token(CONN)


# ---------------------------------------------------------------------------------------------------------
# Reads


def test_read_missing_secret_names_it(secretsmanager: Any) -> None:
    store = SecretStore(secretsmanager, prefix="nowhere/")
    with pytest.raises(SecretMissingError) as info:
        store.read_credentials(CONN)
    err = info.value
    assert isinstance(err, StoreError)
    assert err.secret_name == "nowhere/crm-eu/credentials"
    assert err.aws_code == "ResourceNotFoundException"
    assert "nowhere/crm-eu/credentials" in str(err)
    assert "bootstrap" in str(err)
    with pytest.raises(SecretMissingError, match="nowhere/crm-eu/access-token"):
        store.read_access_token(CONN)


def test_read_placeholder_credentials_is_not_bootstrapped(deployed: Any) -> None:
    with pytest.raises(NotBootstrappedError):
        SecretStore(deployed).read_credentials(CONN)


def test_read_pending_access_token(deployed: Any) -> None:
    versioned = SecretStore(deployed).read_access_token(CONN)
    assert versioned.value.status is Status.PENDING
    assert versioned.value.dc == "eu"
    assert versioned.version_id == current_version(deployed, f"zoho/{CONN}/access-token")


def test_read_credentials_returns_value_and_version(deployed: Any) -> None:
    name = f"zoho/{CONN}/credentials"
    put = deployed.put_secret_value(SecretId=name, SecretString=credentials().to_secret_string())
    versioned = SecretStore(deployed).read_credentials(CONN)
    assert versioned.value == credentials()
    assert versioned.version_id == put["VersionId"]
    assert versioned.secret_string == credentials().to_secret_string()
    for value in (CLIENT_SECRET, REFRESH_TOKEN):
        assert value not in repr(versioned)


def test_binary_only_secret_is_missing(secretsmanager: Any) -> None:
    secretsmanager.create_secret(Name="zoho/bin/access-token", SecretBinary=b"\x00\x01")
    with pytest.raises(SecretMissingError) as info:
        SecretStore(secretsmanager).read_access_token("bin")
    assert info.value.aws_code == "NoSecretString"
    assert "zoho/bin/access-token" in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# Writes and compare-and-swap


def test_write_from_base_then_read_back(deployed: Any) -> None:
    store = SecretStore(deployed)
    base = store.read_access_token(CONN)
    new_version = store.write_access_token(CONN, ok_state(), base=base)
    assert new_version != base.version_id
    assert new_version == cas_token(f"zoho/{CONN}/access-token", base.version_id)
    again = store.read_access_token(CONN)
    assert again.value == ok_state()
    assert again.version_id == new_version


def test_two_writers_from_the_same_base_second_loses(deployed: Any) -> None:
    store = SecretStore(deployed)
    name = f"zoho/{CONN}/access-token"
    base = store.read_access_token(CONN)
    first = store.write_access_token(CONN, ok_state(ACCESS_TOKEN), base=base)
    with pytest.raises(ConcurrentWriteError) as info:
        store.write_access_token(CONN, ok_state(ACCESS_TOKEN + "-other"), base=base)
    err = info.value
    assert isinstance(err, StoreError)
    assert err.secret_name == name
    assert err.aws_code == "ResourceExistsException"
    assert base.version_id in str(err)
    assert_no_value(err, ACCESS_TOKEN)
    # The winner's value stays current.
    assert current_version(deployed, name) == first
    assert store.read_access_token(CONN).value.access_token == ACCESS_TOKEN


def test_a_writer_that_reread_after_losing_succeeds(deployed: Any) -> None:
    store = SecretStore(deployed)
    base = store.read_access_token(CONN)
    store.write_access_token(CONN, ok_state(), base=base)
    with pytest.raises(ConcurrentWriteError):
        store.write_access_token(CONN, ok_state().with_changes(status=Status.FAILING), base=base)
    fresh = store.read_access_token(CONN)
    store.write_access_token(CONN, fresh.value.with_changes(status=Status.FAILING), base=fresh)
    assert store.read_access_token(CONN).value.status is Status.FAILING


def test_identical_retry_is_idempotent(deployed: Any) -> None:
    store = SecretStore(deployed)
    name = f"zoho/{CONN}/access-token"
    base = store.read_access_token(CONN)
    first = store.write_access_token(CONN, ok_state(), base=base)
    count = len(versions(deployed, name))
    second = store.write_access_token(CONN, ok_state(), base=base)
    assert second == first
    assert len(versions(deployed, name)) == count
    assert current_version(deployed, name) == first


def test_write_without_base_always_creates_a_version(deployed: Any) -> None:
    store = SecretStore(deployed)
    name = f"zoho/{CONN}/credentials"
    first = store.write_credentials(CONN, credentials(), base_version_id=None)
    second = store.write_credentials(CONN, credentials(), base_version_id=None)
    assert first != second
    assert current_version(deployed, name) == second
    assert store.read_credentials(CONN).value == credentials()


def test_credentials_cas(deployed: Any) -> None:
    store = SecretStore(deployed)
    name = f"zoho/{CONN}/credentials"
    base = current_version(deployed, name)
    store.write_credentials(CONN, credentials(), base_version_id=base)
    replaced = replace(credentials(), refresh_token=REFRESH_TOKEN + "-2")
    with pytest.raises(ConcurrentWriteError) as info:
        store.write_credentials(CONN, replaced, base_version_id=base)
    assert_no_value(info.value, CLIENT_SECRET, REFRESH_TOKEN)
    assert store.read_credentials(CONN).value.refresh_token == REFRESH_TOKEN


def test_write_to_missing_secret(secretsmanager: Any) -> None:
    store = SecretStore(secretsmanager)
    with pytest.raises(SecretMissingError) as info:
        store.write_access_token(CONN, ok_state(), base=None)
    assert info.value.aws_code == "ResourceNotFoundException"
    assert "zoho/crm-eu/access-token" in str(info.value)
    assert_no_value(info.value, ACCESS_TOKEN)
    # The store never creates secrets.
    assert secretsmanager.list_secrets()["SecretList"] == []


def test_cas_token_is_deterministic_and_specific() -> None:
    token = cas_token("zoho/a/access-token", "v1")
    assert token == cas_token("zoho/a/access-token", "v1")
    assert token != cas_token("zoho/a/access-token", "v2")
    assert token != cas_token("zoho/b/access-token", "v1")
    # ClientRequestToken must be 32-64 characters.
    assert 32 <= len(token) <= 64


# ---------------------------------------------------------------------------------------------------------
# AWS failures are wrapped, with the code and without values


def _fail_with(
    code: str, message: str, status: int = 400
) -> Callable[..., tuple[AWSResponse, dict[str, Any]]]:
    def handler(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        parsed = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("https://secretsmanager.invalid/", status, HTTPHeaders(), None), parsed

    return handler


@pytest.mark.parametrize(
    ("code", "status"),
    [("AccessDeniedException", 400), ("InternalServiceError", 500), ("ThrottlingException", 400)],
)
def test_read_client_errors_are_wrapped(deployed: Any, code: str, status: int) -> None:
    # AWS's own message text is not trusted to be value-free: the store must not repeat it.
    deployed.meta.events.register(
        "before-call.secrets-manager.GetSecretValue", _fail_with(code, f"denied {ACCESS_TOKEN}", status)
    )
    with pytest.raises(StoreError) as info:
        SecretStore(deployed).read_access_token(CONN)
    err = info.value
    assert type(err) is StoreError
    assert err.aws_code == code
    assert err.secret_name == f"zoho/{CONN}/access-token"
    assert code in str(err)
    assert f"zoho/{CONN}/access-token" in str(err)
    assert err.__cause__ is None
    assert err.__suppress_context__ is True
    assert_no_value(err, ACCESS_TOKEN)


def test_write_client_errors_are_wrapped_without_the_value(deployed: Any) -> None:
    seen: list[str] = []

    def handler(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = kwargs["params"]["body"]
        seen.append(body.decode() if isinstance(body, bytes) else str(body))
        return _fail_with("KMSAccessDeniedException", f"cannot encrypt {CLIENT_SECRET}")(**kwargs)

    deployed.meta.events.register("before-call.secrets-manager.PutSecretValue", handler)
    with pytest.raises(StoreError) as info:
        SecretStore(deployed).write_credentials(CONN, credentials(), base_version_id="v1")
    assert CLIENT_SECRET in seen[0]  # the hook really sat on the write's path
    err = info.value
    assert type(err) is StoreError
    assert err.aws_code == "KMSAccessDeniedException"
    assert_no_value(err, CLIENT_SECRET, REFRESH_TOKEN)
    # Nothing was written: the placeholder is still current.
    with pytest.raises(NotBootstrappedError):
        SecretStore(deployed).read_credentials(CONN)


def test_transport_failures_are_wrapped(deployed: Any) -> None:
    def unreachable(**kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://secretsmanager.invalid/")

    deployed.meta.events.register("before-call.secrets-manager.GetSecretValue", unreachable)
    deployed.meta.events.register("before-call.secrets-manager.PutSecretValue", unreachable)
    store = SecretStore(deployed)
    with pytest.raises(StoreError) as read_info:
        store.read_access_token(CONN)
    assert type(read_info.value) is StoreError
    assert read_info.value.aws_code == "EndpointConnectionError"
    assert "reading secret zoho/crm-eu/access-token" in str(read_info.value)
    with pytest.raises(StoreError) as write_info:
        store.write_access_token(CONN, ok_state(), base=None)
    assert write_info.value.aws_code == "EndpointConnectionError"
    assert "writing secret zoho/crm-eu/access-token" in str(write_info.value)
    assert_no_value(write_info.value, ACCESS_TOKEN)


def test_versioned_repr_hides_the_secret_string() -> None:
    versioned = Versioned(ok_state(), "v1", ok_state().to_secret_string())
    assert ACCESS_TOKEN not in repr(versioned)
    assert "v1" in repr(versioned)
