"""Sample consumer Lambda (deployed only with ``-c sample_consumer=true``): the wiring, end to end.

Its asset holds this file and ``lambda_refresh/consumer.py`` (standard library + boto3 only). Its role
has exactly what ``grant_read_access_token`` and ``grant_force_refresh`` give. Invoke it with ``{}`` to
read the token, or with ``{"path": "/crm/v8/users?type=CurrentUser"}`` to also call Zoho with it; on
an invalid-token answer it asks the refresher for one forced refresh and retries once. It returns
metadata only, never the token.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from lambda_refresh.consumer import AccessToken, get_access_token, request_refresh

_DEAD_TOKEN_CODES = (b'"INVALID_TOKEN"', b'"INVALID_OAUTHTOKEN"', b'"AUTHENTICATION_FAILURE"')


def _call(token: AccessToken, path: str) -> int:
    if not path.startswith("/"):
        raise ValueError("path must be an API path starting with '/'")
    request = urllib.request.Request(  # noqa: S310 - the URL is https://<api_domain Zoho returned><path>
        token.api_domain + path, headers={"Authorization": token.authorization_header}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - see above
        status: int = response.status
        return status


def lambda_handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    connection = os.environ["ZOHO_CONNECTION"]
    prefix = os.environ.get("ZOHO_SECRET_PREFIX", "zoho/")
    token = get_access_token(connection, prefix=prefix)
    result: dict[str, Any] = {
        "connection": connection,
        "api_domain": token.api_domain,
        "expires_at": token.expires_at.isoformat(),
        "token_fingerprint": token.fingerprint,
    }
    path = (event or {}).get("path")
    if isinstance(path, str):
        try:
            result["status_code"] = _call(token, path)
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code not in (400, 401) or not any(code in body for code in _DEAD_TOKEN_CODES):
                raise
            # One forced refresh, only if this is still the stored token; then retry once, never loop.
            token = request_refresh(connection, invalid_token=token, prefix=prefix)
            result["refreshed"] = True
            result["token_fingerprint"] = token.fingerprint
            result["status_code"] = _call(token, path)
    print(json.dumps({"sample_consumer": result}))
    return result
