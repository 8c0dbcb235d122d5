"""Test helpers that are real parts, not mocks: a moto server on loopback and connection seeding."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from lambda_refresh.models import AccessTokenState, Credentials, Status
from lambda_refresh.zoho import ZohoAccountsClient
from tests import leakguard
from zoho_token.local import MotoServer, create_deployed_secrets, free_port


@dataclass
class SeededConnection:
    name: str
    client_id: str
    client_secret: str
    refresh_token: str
    accounts_url: str
    credentials_version: str


def seed_connection(
    sm: Any,
    sim: Any,
    name: str,
    *,
    prefix: str = "zoho/",
    dc: str = "eu",
    deployed: bool = True,
) -> SeededConnection:
    """Do what a bootstrap does, through the real Zoho client against the simulator: register a self
    client, exchange a grant code, write the credentials secret. The access-token secret stays pending."""
    if deployed:
        create_deployed_secrets(sm, name, dc, prefix=prefix)
    client_id, client_secret = sim.register_client()
    code = sim.issue_grant_code(client_id)
    grant = ZohoAccountsClient(sim.url, allow_local=True).exchange_grant_code(client_id, client_secret, code)
    assert grant.refresh_token is not None
    leakguard.register(client_secret, grant.refresh_token, grant.access_token, code)
    credentials = Credentials(
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=grant.refresh_token,
        dc=dc,
        accounts_url=sim.url,
        api_domain=grant.api_domain,
        scope=grant.scope,
        issued_at=datetime.now(UTC),
    )
    response = sm.put_secret_value(
        SecretId=f"{prefix}{name}/credentials", SecretString=credentials.to_secret_string()
    )
    return SeededConnection(
        name, client_id, client_secret, grant.refresh_token, sim.url, response["VersionId"]
    )


def read_state(sm: Any, name: str, *, prefix: str = "zoho/") -> AccessTokenState:
    value = sm.get_secret_value(SecretId=f"{prefix}{name}/access-token")["SecretString"]
    return AccessTokenState.from_secret_string(value)


def access_token_versions(sm: Any, name: str, *, prefix: str = "zoho/") -> int:
    response = sm.list_secret_version_ids(SecretId=f"{prefix}{name}/access-token", IncludeDeprecated=True)
    return len(response["Versions"])


def api_accepts(sim: Any, state: AccessTokenState) -> bool:
    """Call the simulator's API with the stored token, as a consumer would."""
    assert state.access_token is not None
    assert state.api_domain is not None
    response = requests.get(
        f"{state.api_domain}/crm/v8/users",
        headers={"Authorization": f"Zoho-oauthtoken {state.access_token}"},
        timeout=5,
    )
    return response.status_code == 200


__all__ = [
    "MotoServer",
    "SeededConnection",
    "Status",
    "create_deployed_secrets",
    "free_port",
    "seed_connection",
]
