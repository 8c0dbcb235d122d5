"""Secrets Manager access for the two secrets of each connection.

The store never creates secrets (the deployment or the operator's bootstrap does) and writes with
compare-and-swap: the ``ClientRequestToken`` of a write is derived from the version the writer read, so
of two writers that started from the same version only the first succeeds; the second gets
:class:`ConcurrentWriteError` and must re-read. A retried identical write is idempotent.

Example::

    store = SecretStore(prefix="zoho/")
    state = store.read_access_token("crm-eu")
    store.write_access_token("crm-eu", state.value.with_changes(status=Status.FAILING), base=state)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from lambda_refresh.models import AccessTokenState, Credentials

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

DEFAULT_PREFIX: Final = "zoho/"
CREDENTIALS_SUFFIX: Final = "credentials"
ACCESS_TOKEN_SUFFIX: Final = "access-token"  # noqa: S105 - a secret name part
# A fixed namespace makes derived ClientRequestTokens stable across processes and machines.
_CAS_NAMESPACE: Final = uuid.UUID("5b0a8d4e-4f0e-4d33-9a55-7a1f0e1c2b6d")

T = TypeVar("T")


class StoreError(Exception):
    """An AWS call failed. Carries the AWS error code and the secret name, never a value."""

    def __init__(self, message: str, *, secret_name: str, aws_code: str) -> None:
        super().__init__(message)
        self.secret_name = secret_name
        self.aws_code = aws_code


class SecretMissingError(StoreError):
    """The secret does not exist (or has no current value): the deployment or bootstrap is missing."""


class ConcurrentWriteError(StoreError):
    """Another writer replaced the version this write was based on."""


@dataclass(frozen=True)
class Versioned(Generic[T]):
    """A parsed secret value with the Secrets Manager version it came from."""

    value: T
    version_id: str
    secret_string: str = field(repr=False)


def _aws_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", "Unknown"))


@contextmanager
def _aws_errors(secret_name: str, doing: str, *, base_version_id: str | None = None) -> Iterator[None]:
    """Translate botocore's exceptions into :class:`StoreError` kinds; their text never holds a value."""
    try:
        yield
    except ClientError as err:
        code = _aws_code(err)
        if code == "ResourceNotFoundException":
            raise SecretMissingError(
                f"secret {secret_name} does not exist (deploy the stack or run zoho-token bootstrap)",
                secret_name=secret_name,
                aws_code=code,
            ) from None
        if code == "ResourceExistsException":  # PutSecretValue with a ClientRequestToken already used
            raise ConcurrentWriteError(
                f"secret {secret_name} was changed by another writer since version {base_version_id}",
                secret_name=secret_name,
                aws_code=code,
            ) from None
        raise StoreError(
            f"{doing} secret {secret_name} failed with {code}", secret_name=secret_name, aws_code=code
        ) from None
    except BotoCoreError as err:
        raise StoreError(
            f"{doing} secret {secret_name} failed ({type(err).__name__})",
            secret_name=secret_name,
            aws_code=type(err).__name__,
        ) from None


def cas_token(secret_name: str, base_version_id: str) -> str:
    """The ClientRequestToken for a write based on ``base_version_id`` of ``secret_name``."""
    return str(uuid.uuid5(_CAS_NAMESPACE, f"{secret_name}\n{base_version_id}"))


class SecretStore:
    """Reads and writes the connection secrets under one prefix."""

    def __init__(self, client: SecretsManagerClient | None = None, *, prefix: str = DEFAULT_PREFIX) -> None:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        self._client = client
        self.prefix = prefix

    def credentials_name(self, connection: str) -> str:
        return f"{self.prefix}{connection}/{CREDENTIALS_SUFFIX}"

    def access_token_name(self, connection: str) -> str:
        return f"{self.prefix}{connection}/{ACCESS_TOKEN_SUFFIX}"

    # -- reads ------------------------------------------------------------------------------------------

    def read_raw(self, secret_name: str, *, version_stage: str = "AWSCURRENT") -> tuple[str, str]:
        """``(secret_string, version_id)`` of a secret's version; raises a :class:`StoreError`."""
        with _aws_errors(secret_name, "reading"):
            response = self._client.get_secret_value(SecretId=secret_name, VersionStage=version_stage)
        secret_string = response.get("SecretString")
        if secret_string is None:
            raise SecretMissingError(
                f"secret {secret_name} has no string value",
                secret_name=secret_name,
                aws_code="NoSecretString",
            )
        return secret_string, response["VersionId"]

    def current_version(self, secret_name: str) -> str | None:
        """The AWSCURRENT version id, from metadata only (DescribeSecret): no secret value is read."""
        with _aws_errors(secret_name, "describing"):
            response = self._client.describe_secret(SecretId=secret_name)
        stages = response.get("VersionIdsToStages", {})
        return next((version for version, labels in stages.items() if "AWSCURRENT" in labels), None)

    def read_credentials(self, connection: str) -> Versioned[Credentials]:
        """The credentials secret, parsed. Raises ``InvalidSecretError`` for a malformed value."""
        secret_string, version_id = self.read_raw(self.credentials_name(connection))
        return Versioned(Credentials.from_secret_string(secret_string), version_id, secret_string)

    def read_access_token(self, connection: str) -> Versioned[AccessTokenState]:
        secret_string, version_id = self.read_raw(self.access_token_name(connection))
        return Versioned(AccessTokenState.from_secret_string(secret_string), version_id, secret_string)

    # -- writes -----------------------------------------------------------------------------------------

    def write_raw(self, secret_name: str, secret_string: str, *, base_version_id: str | None) -> str:
        """Put a new current version; with a base version the write is compare-and-swap."""
        kwargs: dict[str, Any] = {"SecretId": secret_name, "SecretString": secret_string}
        if base_version_id is not None:
            kwargs["ClientRequestToken"] = cas_token(secret_name, base_version_id)
        with _aws_errors(secret_name, "writing", base_version_id=base_version_id):
            response = self._client.put_secret_value(**kwargs)
        return response["VersionId"]

    def write_access_token(
        self, connection: str, state: AccessTokenState, *, base: Versioned[AccessTokenState] | None
    ) -> str:
        return self.write_raw(
            self.access_token_name(connection),
            state.to_secret_string(),
            base_version_id=base.version_id if base else None,
        )

    def write_credentials(
        self, connection: str, credentials: Credentials, *, base_version_id: str | None
    ) -> str:
        return self.write_raw(
            self.credentials_name(connection), credentials.to_secret_string(), base_version_id=base_version_id
        )
