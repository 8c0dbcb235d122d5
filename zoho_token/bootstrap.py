"""``zoho-token bootstrap`` and ``zoho-token revoke``: the two ends of a refresh token's life.

The bootstrap exchanges a self-client grant code for a refresh token once per connection. A grant code
is single use, lives a few minutes, and a failed exchange spends it, so everything that can be checked
is checked first (names, DC, client id and code shapes, AWS identity and region, both secrets) and the
code is sent only when nothing else can go wrong but Zoho's answer. After the exchange the credentials
secret is written first, then the access-token secret: a failure between the two leaves a consistent
state, because the refresher mints from whatever credentials are current.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from zoho_token.console import (
    EXIT_FAILURE,
    EXIT_OK,
    Aws,
    CliError,
    Output,
    allow_local_accounts,
    aws_failure,
    aws_session,
    caller_arn,
    human_duration,
    iso,
    prompt_line,
    prompt_secret,
    resolve_prefix,
    stdin_is_interactive,
    usage_error,
    utc_now,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from lambda_refresh.models import AccessTokenState, Credentials
    from lambda_refresh.store import SecretStore, Versioned
    from lambda_refresh.zoho import TokenGrant, ZohoAccountsClient, ZohoError

# Zoho client ids are "1000." and 30 uppercase alphanumerics today; the length is not promised.
_CLIENT_ID: Final = re.compile(r"1000\.[A-Z0-9]{10,64}")
# Self-client grant codes are "1000.<32 hex>.<32 hex>".
_GRANT_CODE: Final = re.compile(r"1000\.[0-9a-fA-F]{8,128}\.[0-9a-fA-F]{8,128}")
_SCOPE_ITEM: Final = re.compile(r"[A-Za-z0-9._-]{1,100}")
_CAP_WARNING: Final = (
    "Zoho keeps at most 20 refresh tokens per user and client: creating a 21st silently deletes the "
    "oldest one, and with it whatever still uses it (another system, or this connection's previous token)."
)
_UNCHANGED: Final = "Nothing was written: both secrets are unchanged."
REVOKED_BY_OPERATOR: Final = "revoked_by_operator"


# ---------------------------------------------------------------------------------------------------------
# Input checks (no network)


@dataclass(frozen=True)
class Target:
    """Where the exchange goes and which DC label the secrets carry."""

    dc: str
    accounts_url: str
    default_api_domain: str | None
    local: bool

    def describe(self) -> str:
        where = "local simulation" if self.local else "Zoho"
        return f"DC '{self.dc}' ({where} accounts server {self.accounts_url})"


def resolve_target(dc: str | None, accounts_url: str | None, *, allow_local: bool) -> Target:
    """``--dc`` and/or ``--accounts-url`` → a :class:`Target`; both must agree when both are given.

    A loopback accounts URL (only with ``ZOHO_ALLOW_LOCAL_ACCOUNTS=true``) needs ``--dc`` as the label.
    """
    from lambda_refresh.zoho import (
        DATA_CENTERS,
        LOCAL_DC,
        AccountsUrlNotAllowedError,
        check_accounts_url,
        normalise_accounts_url,
    )

    known = ", ".join(DATA_CENTERS)
    if dc is not None and dc not in DATA_CENTERS:
        raise usage_error(f"--dc must be one of: {known} (the data center the Self Client was created in)")
    if accounts_url is None:
        if dc is None:
            raise usage_error(f"say which Zoho data center the Self Client is in: --dc ({known})")
        center = DATA_CENTERS[dc]
        return Target(dc, center.accounts_url, center.api_domain, local=False)
    try:
        url_dc = check_accounts_url(accounts_url, allow_local=allow_local)
    except AccountsUrlNotAllowedError as err:
        raise usage_error(f"--accounts-url: {err}") from None
    url = normalise_accounts_url(accounts_url)
    if url_dc == LOCAL_DC:
        if dc is None:
            raise usage_error(
                "a loopback --accounts-url needs --dc too: the data-center label stored with the connection"
            )
        return Target(dc, url, None, local=True)
    if dc is not None and dc != url_dc:
        raise usage_error(
            f"--dc {dc} and --accounts-url (the {url_dc} accounts server) disagree; a self client and its "
            "tokens belong to one data center. Give just one of them."
        )
    return Target(url_dc, url, DATA_CENTERS[url_dc].api_domain, local=False)


def api_console_url(target: Target) -> str:
    """Where the operator generates codes for this DC (api-console.<the accounts domain>)."""
    if target.local:
        return "the simulator (issue_grant_code)"
    return target.accounts_url.replace("://accounts.", "://api-console.", 1)


def check_client_id(value: str) -> str:
    value = value.strip()
    if not _CLIENT_ID.fullmatch(value):
        # Not echoed: a mis-pasted value could be the secret.
        raise usage_error(
            "--client-id does not look like a Zoho client id ('1000.' followed by uppercase letters and "
            "digits); copy the Client ID from the Self Client's 'Client Secret' tab in the API console"
        )
    return value


def check_grant_code(value: str) -> str:
    value = value.strip()
    if not _GRANT_CODE.fullmatch(value):
        raise usage_error(
            "the grant code does not look like a Zoho self-client code (1000.<hex>.<hex>); copy the whole "
            "code shown after Self Client > Generate Code > Create (it was not sent to Zoho)"
        )
    return value


def check_client_secret(value: str) -> str:
    value = value.strip()
    if not value:
        raise usage_error(
            "the client secret is empty; set ZOHO_CLIENT_SECRET or paste it at the prompt "
            "(Self Client > Client Secret tab)"
        )
    if len(value) > 256 or not value.isascii() or not value.isprintable() or " " in value:
        raise usage_error("the client secret contains characters a Zoho client secret never has")
    if _GRANT_CODE.fullmatch(value):
        raise usage_error(
            "that looks like a grant code or token, not the client secret; the client secret is on the "
            "Self Client's 'Client Secret' tab"
        )
    return value


def normalise_scope(value: str | None) -> str | None:
    if value is None:
        return None
    items = value.replace(",", " ").split()
    if not items or not all(_SCOPE_ITEM.fullmatch(item) for item in items):
        raise usage_error("--scope must list Zoho scopes such as ZohoCRM.modules.ALL,ZohoCRM.users.READ")
    return " ".join(items)


# ---------------------------------------------------------------------------------------------------------
# Reading what is there


@dataclass
class Existing:
    """One secret as the preflight found it."""

    name: str
    exists: bool
    version_id: str | None = None
    secret_string: str | None = field(default=None, repr=False)


def _read_failure(name: str, aws_code: str) -> CliError:
    if aws_code in ("AccessDeniedException", "AccessDenied"):
        return CliError(
            f"you may not read secret {name} (AccessDenied). The operator role needs the construct's "
            "grant_operate (GetSecretValue, PutSecretValue, DescribeSecret and kms:Decrypt/Encrypt on its key)."
        )
    if aws_code in ("DecryptionFailure", "KMSAccessDeniedException"):
        return CliError(f"cannot decrypt secret {name} ({aws_code}): you need kms:Decrypt on its KMS key.")
    if aws_code == "InvalidRequestException":
        return CliError(
            f"secret {name} cannot be used (InvalidRequestException): it is probably scheduled for "
            f"deletion. Restore it ('aws secretsmanager restore-secret --secret-id {name}') or wait until "
            "the deletion completes, then run this again."
        )
    return CliError(f"reading secret {name} failed ({aws_code}); check your AWS access and run this again.")


def read_existing(store: SecretStore, sm: SecretsManagerClient, name: str) -> Existing:
    """The current value of ``name``, or that it is absent. Raises :class:`CliError` when unreadable."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_refresh.store import SecretMissingError, StoreError

    try:
        secret_string, version_id = store.read_raw(name)
    except SecretMissingError as err:
        if err.aws_code == "NoSecretString":
            raise CliError(
                f"secret {name} holds a binary value, not the JSON this tool writes; delete it or use "
                "another --prefix"
            ) from None
        try:
            sm.describe_secret(SecretId=name)
        except ClientError as describe_err:
            if describe_err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return Existing(name, exists=False)
            raise aws_failure(describe_err, f"checking secret {name}") from None
        except BotoCoreError as describe_err:
            raise aws_failure(describe_err, f"checking secret {name}") from None
        # It exists without a current value (created empty): writable, nothing to protect.
        return Existing(name, exists=True)
    except StoreError as err:
        if err.aws_code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            raise CliError(f"could not reach AWS Secrets Manager to read {name} ({err.aws_code}).") from None
        raise _read_failure(name, err.aws_code) from None
    return Existing(name, exists=True, version_id=version_id, secret_string=secret_string)


@dataclass
class CredentialsFound:
    """What the credentials secret holds: absent, the deployment's placeholder, real ones, or garbage."""

    existing: Existing
    kind: str  # "absent" | "empty" | "placeholder" | "bootstrapped" | "invalid"
    credentials: Credentials | None = field(default=None, repr=False)
    placeholder_dc: str | None = None
    problem: str | None = None


def classify_credentials(existing: Existing) -> CredentialsFound:
    from lambda_refresh.models import Credentials, InvalidSecretError, NotBootstrappedError

    if not existing.exists:
        return CredentialsFound(existing, "absent")
    if existing.secret_string is None:
        return CredentialsFound(existing, "empty")
    try:
        return CredentialsFound(
            existing, "bootstrapped", credentials=Credentials.from_secret_string(existing.secret_string)
        )
    except NotBootstrappedError:
        try:
            data = json.loads(existing.secret_string)
        except ValueError:
            data = {}
        dc = data.get("dc") if isinstance(data, dict) else None
        return CredentialsFound(existing, "placeholder", placeholder_dc=dc if isinstance(dc, str) else None)
    except InvalidSecretError as err:
        return CredentialsFound(existing, "invalid", problem=str(err))


# ---------------------------------------------------------------------------------------------------------
# bootstrap


@dataclass(frozen=True)
class BootstrapOptions:
    connection: str
    client_id: str
    dc: str | None = None
    accounts_url: str | None = None
    code: str | None = field(default=None, repr=False)
    scope: str | None = None
    prefix: str | None = None
    region: str | None = None
    kms_key_id: str | None = None
    replace: bool = False
    revoke_old: bool = False


@dataclass
class _Plan:
    """Everything the preflight established; the exchange and the writes only follow it."""

    name: str
    target: Target
    client_id: str
    prefix: str
    scope: str | None
    aws: Aws
    store: SecretStore
    sm: SecretsManagerClient
    caller: str
    credentials: CredentialsFound
    token: Existing
    kms_key_id: str | None
    replace: bool
    revoke_old: bool
    allow_local: bool
    warnings: list[str] = field(default_factory=list)


def _warn(plan: _Plan, out: Output, message: str) -> None:
    plan.warnings.append(message)
    out.warn(message)


def run_bootstrap(options: BootstrapOptions, out: Output, env: Mapping[str, str]) -> int:
    from lambda_refresh.models import validate_connection_name
    from lambda_refresh.store import SecretStore

    # 1. Everything that needs no network.
    try:
        name = validate_connection_name(options.connection)
    except ValueError as err:
        raise usage_error(str(err)) from None
    allow_local = allow_local_accounts(env)
    target = resolve_target(options.dc, options.accounts_url, allow_local=allow_local)
    client_id = check_client_id(options.client_id)
    prefix = resolve_prefix(options.prefix, env)
    scope = normalise_scope(options.scope)
    if options.revoke_old and not options.replace:
        raise usage_error("--revoke-old needs --replace (it revokes the refresh token being replaced)")
    if options.kms_key_id is not None and not options.kms_key_id.strip():
        raise usage_error("--kms-key-id is empty; give a key id, ARN or alias/NAME")
    code = options.code if options.code is not None else (env.get("ZOHO_GRANT_CODE") or None)
    if code is not None:
        code = check_grant_code(code)

    # 2. AWS: identity, region, both secrets, the KMS key. Still nothing sent to Zoho.
    aws = aws_session(options.region, env)
    with out.spinner(f"Checking AWS access in {aws.region}…"):
        caller = caller_arn(aws)
        sm = aws.secretsmanager()
        store = SecretStore(sm, prefix=prefix)
        credentials = classify_credentials(read_existing(store, sm, store.credentials_name(name)))
        token = read_existing(store, sm, store.access_token_name(name))
    out.note(f"AWS identity {caller} in {aws.region}")
    plan = _Plan(
        name=name,
        target=target,
        client_id=client_id,
        prefix=prefix,
        scope=scope,
        aws=aws,
        store=store,
        sm=sm,
        caller=caller,
        credentials=credentials,
        token=token,
        kms_key_id=options.kms_key_id.strip() if options.kms_key_id else None,
        replace=options.replace,
        revoke_old=options.revoke_old,
        allow_local=allow_local,
    )
    _check_replace(plan, out)
    _check_kms(plan, out)

    # 3. The client secret, then a check of client id, secret and DC at Zoho that spends nothing.
    secret = env.get("ZOHO_CLIENT_SECRET")
    if secret is None:
        secret = prompt_secret(
            "Client secret (hidden; Self Client > Client Secret tab): ",
            what="client secret",
            how="set ZOHO_CLIENT_SECRET or run interactively",
        )
    client_secret = check_client_secret(secret)
    from lambda_refresh.zoho import ZohoAccountsClient, ZohoError

    client = ZohoAccountsClient(target.accounts_url, allow_local=allow_local)
    _check_client(plan, out, client, client_secret)

    # 4. The grant code, asked for only now, and the one call that spends it.
    if code is None:
        out.note(
            f"All checks passed. Generate the grant code now at {api_console_url(target)} "
            "(Self Client > Generate Code) and paste it within its time limit."
        )
        code = check_grant_code(
            prompt_line(
                "Grant code: ", what="grant code", how="pass --code, set ZOHO_GRANT_CODE or run interactively"
            )
        )
    try:
        with out.spinner(f"Exchanging the grant code at {target.accounts_url}…"):
            grant = client.exchange_grant_code(client_id, client_secret, code)
    except ZohoError as err:
        raise CliError(_exchange_failure(err, plan)) from None
    if grant.refresh_token is None:
        raise CliError(
            "Zoho issued an access token but no refresh token: the code was generated without offline "
            "access (web flows need access_type=offline&prompt=consent; a Self Client's Generate Code "
            "always gives one). Generate a new code with Self Client > Generate Code and run this again. "
            + _UNCHANGED
        )

    # 5. Store: credentials first, then the access token.
    return _store_and_report(plan, out, client, client_secret, grant, grant.refresh_token)


def _check_replace(plan: _Plan, out: Output) -> None:
    found = plan.credentials
    name = found.existing.name
    from lambda_refresh.models import fingerprint

    old = found.credentials
    if old is not None and not plan.replace:
        raise usage_error(
            f"connection {plan.name} is already bootstrapped ({name} version {found.existing.version_id}, "
            f"refresh token fingerprint {fingerprint(old.refresh_token)}). To replace it, run "
            "again with --replace, and add --revoke-old to revoke the old refresh token at Zoho once the new "
            f"one is stored. {_CAP_WARNING} The grant code was not used."
        )
    if found.kind == "invalid" and not plan.replace:
        raise usage_error(
            f"secret {name} holds something that is not valid credentials ({found.problem}); run again with "
            "--replace to overwrite it. The grant code was not used."
        )
    declared = found.placeholder_dc or _declared_dc(plan.token)
    if old is None and declared and declared != plan.target.dc:
        _warn(
            plan,
            out,
            f"the deployment declared DC '{declared}' for {plan.name}, you are bootstrapping DC "
            f"'{plan.target.dc}'; the secrets will say '{plan.target.dc}'. Fix the stack's configuration if "
            "it was the deployment that was wrong.",
        )
    if found.kind == "placeholder":
        out.note(f"{name}: the deployment's placeholder; it will be filled")
    elif found.kind in ("absent", "empty"):
        out.note(
            f"{name}: {'absent; it will be created' if found.kind == 'absent' else 'empty; it will be filled'}"
        )
    elif old is not None:
        out.note(f"{name}: bootstrapped (version {found.existing.version_id}); it will be replaced")
        if old.dc != plan.target.dc:
            _warn(plan, out, f"the connection moves from DC '{old.dc}' to '{plan.target.dc}'")
        if not plan.revoke_old:
            _warn(
                plan,
                out,
                "the old refresh token stays valid at Zoho (no --revoke-old). " + _CAP_WARNING,
            )
    if plan.revoke_old and found.kind != "bootstrapped":
        _warn(plan, out, "--revoke-old: there is no previous refresh token to revoke")
    token_state = "exists; it will be updated" if plan.token.exists else "absent; it will be created"
    out.note(f"{plan.token.name}: {token_state}")


def _declared_dc(token: Existing) -> str | None:
    """The DC a deployment wrote into the access-token secret (the credentials placeholder has none)."""
    if token.secret_string is None:
        return None
    try:
        data = json.loads(token.secret_string)
    except ValueError:
        return None
    dc = data.get("dc") if isinstance(data, dict) else None
    return dc if isinstance(dc, str) else None


def _check_kms(plan: _Plan, out: Output) -> None:
    creating = not plan.credentials.existing.exists or not plan.token.exists
    if plan.kms_key_id is None:
        return
    if not creating:
        _warn(
            plan,
            out,
            "--kms-key-id is ignored: both secrets exist and keep the key they were created with",
        )
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        metadata = plan.aws.kms().describe_key(KeyId=plan.kms_key_id)["KeyMetadata"]
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", "Unknown"))
        if code == "NotFoundException":
            raise usage_error(
                f"KMS key {plan.kms_key_id} does not exist in {plan.aws.region}; give the key id, ARN or "
                "alias/NAME of a key in the stack's region"
            ) from None
        if code in ("AccessDeniedException", "AccessDenied"):
            _warn(
                plan,
                out,
                f"could not check KMS key {plan.kms_key_id} (AccessDenied); if you cannot encrypt with it "
                "the secret creation fails and the new refresh token is revoked again",
            )
            return
        raise aws_failure(err, f"checking KMS key {plan.kms_key_id}") from None
    except BotoCoreError as err:
        raise aws_failure(err, f"checking KMS key {plan.kms_key_id}") from None
    if not metadata.get("Enabled", True) or metadata.get("KeyState") not in (None, "Enabled"):
        raise usage_error(
            f"KMS key {plan.kms_key_id} is {metadata.get('KeyState', 'not enabled')}; enable it or choose another"
        )


def _check_client(plan: _Plan, out: Output, client: ZohoAccountsClient, client_secret: str) -> None:
    """Ask Zoho about the client id and secret without spending the grant code.

    A refresh request carrying a random refresh token that cannot exist: Zoho checks the client first, so
    a client of another DC answers ``invalid_client``, a wrong secret ``invalid_client_secret``, and a
    right pair ``invalid_code`` (no such refresh token). Nothing is minted. Answers that prove nothing
    (an unknown error) let the bootstrap go on; the exchange will tell.
    """
    import secrets

    from lambda_refresh.zoho import ErrorClass, ZohoError

    target = plan.target
    not_used = "The grant code was not used."
    probe = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
    try:
        with out.spinner(f"Checking the client id and secret at {target.accounts_url}…"):
            client.refresh(plan.client_id, client_secret, probe)
    except ZohoError as err:
        if err.error_class is ErrorClass.REVOKED:
            out.note(f"Zoho accepts this client id and secret at {target.accounts_url}")
            return
        if err.code == "invalid_client":
            raise CliError(
                f"Zoho does not know client id {plan.client_id} at the accounts server of the DC you asked "
                f"for, {target.describe()} (invalid_client). A Self Client exists only in the data center "
                "whose API console created it: check --dc (api-console.zoho.com is us, api-console.zoho.eu "
                f"is eu, …) and the client id. {not_used}"
            ) from None
        if err.code == "invalid_client_secret":
            raise CliError(
                "Zoho rejected the client secret for this client id (invalid_client_secret). Copy it again "
                "from the Self Client's 'Client Secret' tab into ZOHO_CLIENT_SECRET (or the prompt). "
                + not_used
            ) from None
        if err.error_class is ErrorClass.RATE_LIMITED:
            raise CliError(
                "Zoho answered 'Access Denied' (too many requests) before the exchange: it is throttling "
                "token requests. Wait at least 10 minutes (retrying sooner extends the block). " + not_used
            ) from None
        if err.code in ("timeout", "connection_error", "unexpected_redirect"):
            raise CliError(
                f"cannot reach the Zoho accounts server {target.accounts_url} ({err.code}); check your "
                f"network and proxy settings (HTTPS_PROXY, NO_PROXY). {not_used}"
            ) from None
        out.note(f"could not confirm the client id and secret in advance ({err.code}); continuing")
        return
    out.note("Zoho's check of the client id and secret was inconclusive; continuing")


def _exchange_failure(err: ZohoError, plan: _Plan) -> str:
    from lambda_refresh.zoho import ErrorClass

    target = plan.target
    if target.local:
        where, new_code = "", "Issue a new grant code: this one is used up."
    else:
        console = api_console_url(target)
        where = f" The API console of DC '{target.dc}' is {console}."
        new_code = f"Generate a new code at {console} (Self Client > Generate Code): this one is used up."
    if err.error_class is ErrorClass.GRANT_REJECTED:
        text = f"Zoho rejected the grant code (invalid_code): {err.message}{where}"
    elif err.code == "invalid_client":
        text = (
            f"Zoho does not know client id {plan.client_id} at the accounts server of the DC you asked for, "
            f"{target.describe()} (invalid_client). A Self Client exists only in the data center whose API "
            "console created it: check the DC (api-console.zoho.com is us, api-console.zoho.eu is eu, …) "
            f"and the client id. {new_code}"
        )
    elif err.code == "invalid_client_secret":
        text = (
            "Zoho rejected the client secret for this client id (invalid_client_secret). Copy it again from "
            f"the Self Client's 'Client Secret' tab into ZOHO_CLIENT_SECRET (or the prompt). {new_code}"
        )
    elif err.error_class is ErrorClass.GRANT_LIMIT:
        # Zoho's message already says to wait 10 minutes; the CLI adds why waiting matters.
        text = f"Zoho refused the exchange ({err.code}): {err.message} Retrying sooner extends Zoho's block."
    elif err.error_class is ErrorClass.RATE_LIMITED:
        text = f"Zoho is rate-limiting token requests ({err.code}). Wait at least 10 minutes. {new_code}"
    elif err.code in ("timeout", "connection_error"):
        text = (
            f"the exchange at {target.accounts_url} failed ({err.code}). The code may or may not have "
            "reached Zoho: generate a new one before trying again. If Zoho did process it, a refresh token "
            "this tool never received now exists; it counts toward Zoho's 20-token cap until it is deleted."
        )
    elif err.error_class is ErrorClass.MISCONFIGURED:
        text = f"Zoho rejected the request ({err.code}): {err.message} {new_code}"
    else:
        text = f"Zoho's answer to the exchange was unusable ({err.code}): {err.message} {new_code}"
    return f"{text} {_UNCHANGED}"


# -- writes -------------------------------------------------------------------------------------------------


class _WriteFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe_write_error(err: BaseException) -> str:
    from botocore.exceptions import ClientError

    from lambda_refresh.store import ConcurrentWriteError, StoreError

    if isinstance(err, ConcurrentWriteError):
        return "another writer changed the secret after this bootstrap read it"
    if isinstance(err, StoreError):
        return err.aws_code
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "Unknown"))
    return type(err).__name__


def _create_secret(plan: _Plan, name: str, secret_string: str, description: str) -> str:
    kwargs: dict[str, Any] = {"Name": name, "SecretString": secret_string, "Description": description}
    if plan.kms_key_id:
        kwargs["KmsKeyId"] = plan.kms_key_id
    return plan.sm.create_secret(**kwargs)["VersionId"]


def _landed(plan: _Plan, name: str, secret_string: str) -> str | None:
    """After an ambiguous failure: the version id if our value became current after all."""
    from lambda_refresh.store import StoreError

    try:
        current, version_id = plan.store.read_raw(name)
    except StoreError:
        return None
    return version_id if current == secret_string else None


def _write_credentials(plan: _Plan, credentials: Credentials) -> tuple[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_refresh.store import StoreError

    existing = plan.credentials.existing
    body = credentials.to_secret_string()
    try:
        if existing.exists:
            return plan.store.write_raw(existing.name, body, base_version_id=existing.version_id), "updated"
        description = (
            f"Zoho OAuth client secret and refresh token of connection {plan.name} (zoho-token-sync); "
            "for the refresher and operators only."
        )
        return _create_secret(plan, existing.name, body, description), "created"
    except (StoreError, ClientError, BotoCoreError) as err:
        version = _landed(plan, existing.name, body)
        if version is not None:
            return version, "updated" if existing.exists else "created"
        raise _WriteFailed(_describe_write_error(err)) from None


def _write_access_token(plan: _Plan, state: AccessTokenState) -> tuple[str, str]:
    """Write the first token; on a conflict re-read and write on top, because a concurrent refresher's
    token made from the old credentials must not survive the bootstrap."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lambda_refresh.models import AccessTokenState, InvalidSecretError, Status
    from lambda_refresh.store import ConcurrentWriteError, StoreError

    existing = plan.token
    body = state.to_secret_string()
    base = existing.version_id
    if not existing.exists:
        description = (
            f"Current Zoho access token of connection {plan.name} (zoho-token-sync), kept fresh by the "
            "refresher; what consumers read."
        )
        try:
            return _create_secret(plan, existing.name, body, description), "created"
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceExistsException":
                version = _landed(plan, existing.name, body)
                if version is not None:
                    return version, "created"
                raise _WriteFailed(_describe_write_error(err)) from None
            base = None  # created meanwhile (a deployment): write on top of whatever it holds
        except BotoCoreError as err:
            version = _landed(plan, existing.name, body)
            if version is not None:
                return version, "created"
            raise _WriteFailed(_describe_write_error(err)) from None
    for _ in range(5):
        try:
            return plan.store.write_raw(existing.name, body, base_version_id=base), "updated"
        except ConcurrentWriteError:
            try:
                theirs_string, base = plan.store.read_raw(existing.name)
            except StoreError as err:
                raise _WriteFailed(_describe_write_error(err)) from None
            try:
                theirs = AccessTokenState.from_secret_string(theirs_string)
            except InvalidSecretError:
                continue
            if (
                theirs.status is Status.OK
                and theirs.credentials_version == state.credentials_version
                and theirs.expires_at is not None
                and state.expires_at is not None
                and theirs.expires_at >= state.expires_at
            ):
                # The refresher already minted from the new credentials: its token is as good as ours.
                return base, "kept_newer"
        except (StoreError, ClientError, BotoCoreError) as err:
            version = _landed(plan, existing.name, body)
            if version is not None:
                return version, "updated"
            raise _WriteFailed(_describe_write_error(err)) from None
    raise _WriteFailed("the secret kept changing under concurrent writers")


def _revoke_quietly(client: ZohoAccountsClient, refresh_token: str) -> str:
    """Revoke a token at Zoho; returns a sentence for the operator."""
    from lambda_refresh.models import fingerprint
    from lambda_refresh.zoho import ZohoError

    fp = fingerprint(refresh_token)
    try:
        confirmed = client.revoke_refresh_token(refresh_token)
    except ZohoError as err:
        return (
            f"Revoking the refresh token Zoho just issued (fingerprint {fp}) failed too ({err.code}): it stays "
            "valid and counts toward Zoho's 20-token cap until deleted (Zoho deletes the oldest when a 21st "
            "is created)."
        )
    if confirmed:
        return (
            f"The refresh token Zoho just issued (fingerprint {fp}) was revoked at Zoho, so it neither lingers "
            "nor counts toward the 20-token cap."
        )
    return f"Zoho reports the refresh token it just issued (fingerprint {fp}) as already invalid."


def _store_and_report(
    plan: _Plan,
    out: Output,
    client: ZohoAccountsClient,
    client_secret: str,
    grant: TokenGrant,
    refresh_token: str,
) -> int:
    from lambda_refresh.models import TOKEN_TYPE, AccessTokenState, Credentials, Status, fingerprint

    now = utc_now().replace(microsecond=0)
    granted_scope = grant.scope
    if plan.scope and granted_scope and set(plan.scope.split()) != set(granted_scope.split()):
        _warn(
            plan,
            out,
            f"--scope says '{plan.scope}' but Zoho granted '{granted_scope}'; storing Zoho's. Generate the "
            "code with the scopes you need if this is not what you expected.",
        )
    scope = granted_scope or plan.scope
    if scope is None:
        _warn(plan, out, "Zoho named no scope and --scope was not given; the secrets record none")
    api_domain = grant.api_domain or plan.target.default_api_domain
    credentials = Credentials(
        client_id=plan.client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
        dc=plan.target.dc,
        accounts_url=plan.target.accounts_url,
        api_domain=api_domain,
        scope=scope,
        issued_at=now,
    )
    with out.spinner("Storing the credentials…"):
        try:
            credentials_version, credentials_action = _write_credentials(plan, credentials)
        except _WriteFailed as failure:
            revoked = _revoke_quietly(client, refresh_token)
            raise CliError(
                f"storing secret {plan.credentials.existing.name} failed ({failure.reason}). {revoked} "
                f"{_UNCHANGED} Fix the cause (permissions, KMS key, a concurrent bootstrap), generate a new "
                "code and run this again."
            ) from None
    state = AccessTokenState(
        access_token=grant.access_token,
        token_type=TOKEN_TYPE,
        api_domain=api_domain,
        dc=plan.target.dc,
        scope=scope,
        expires_at=grant.expires_at,
        refreshed_at=now,
        status=Status.OK,
        error=None,
        credentials_version=credentials_version,
        recent_mints=(now,),
    )
    token_version: str | None
    with out.spinner("Storing the first access token…"):
        try:
            token_version, token_action = _write_access_token(plan, state)
        except _WriteFailed as failure:
            token_version, token_action = None, f"failed: {failure.reason}"
    previous = _previous_credentials(plan, out, token_version is not None)
    document = {
        "schema": 1,
        "connection": plan.name,
        "dc": plan.target.dc,
        "accounts_url": plan.target.accounts_url,
        "api_domain": api_domain,
        "scope": scope,
        "client_id": plan.client_id,
        "credentials_secret": {
            "name": plan.credentials.existing.name,
            "version_id": credentials_version,
            "action": credentials_action,
        },
        "access_token_secret": {"name": plan.token.name, "version_id": token_version, "action": token_action},
        "fingerprints": {
            "client_secret": fingerprint(client_secret),
            "refresh_token": fingerprint(refresh_token),
            "access_token": fingerprint(grant.access_token),
        },
        "expires_at": iso(grant.expires_at),
        "previous_credentials": previous,
        "caller": plan.caller,
        "warnings": plan.warnings,
    }
    if out.json_mode:
        out.print_json(document)
    else:
        _print_summary(out, document, grant.expires_at, now)
    if token_version is None:
        out.error(
            f"the credentials were stored (version {credentials_version}) but writing {plan.token.name} failed "
            f"({token_action.removeprefix('failed: ')}). That state is consistent: the refresher mints a "
            f"token from the new credentials on its next run, or run 'zoho-token refresh --connection "
            f"{plan.name}' now."
            + (
                " The old refresh token was NOT revoked; run the bootstrap again later."
                if plan.revoke_old
                else ""
            )
        )
        return EXIT_FAILURE
    if previous is not None and previous.get("revoke_failed"):
        return EXIT_FAILURE
    return EXIT_OK


def _previous_credentials(plan: _Plan, out: Output, token_stored: bool) -> dict[str, Any] | None:
    from lambda_refresh.models import fingerprint
    from lambda_refresh.zoho import AccountsUrlNotAllowedError, ZohoAccountsClient, ZohoError

    found = plan.credentials
    if found.kind != "bootstrapped" or found.credentials is None:
        return None
    old = found.credentials
    info: dict[str, Any] = {
        "version_id": found.existing.version_id,
        "stage": "AWSPREVIOUS",
        "refresh_token_fingerprint": fingerprint(old.refresh_token),
        "revoked": None,
    }
    if not plan.revoke_old or not token_stored:
        return info
    try:
        # The old token belongs to the old DC's accounts server, which may differ from the new one.
        old_client = ZohoAccountsClient(old.accounts_url, allow_local=plan.allow_local)
        with out.spinner("Revoking the old refresh token at Zoho…"):
            confirmed = old_client.revoke_refresh_token(old.refresh_token)
    except (AccountsUrlNotAllowedError, ZohoError) as err:
        reason = err.code if isinstance(err, ZohoError) else "its accounts URL is not an allowed Zoho server"
        info["revoked"] = False
        info["revoke_failed"] = True
        out.error(
            f"the new credentials are stored, but revoking the old refresh token (fingerprint "
            f"{info['refresh_token_fingerprint']}) failed ({reason}). It is still valid: revoke it in Zoho "
            "(Accounts > Security > Connected Apps) or run the bootstrap again later."
        )
        return info
    info["revoked"] = True
    if not confirmed:
        info["note"] = "Zoho reported it as already invalid"
    return info


def _print_summary(out: Output, document: Mapping[str, Any], expires_at: datetime, now: datetime) -> None:
    from rich.table import Table

    fps = document["fingerprints"]
    creds = document["credentials_secret"]
    token = document["access_token_secret"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("data center", f"{document['dc']} ({document['accounts_url']})")
    grid.add_row("api domain", str(document["api_domain"]))
    grid.add_row("scope", str(document["scope"] or "-"))
    grid.add_row("client id", str(document["client_id"]))
    grid.add_row("client secret", f"fingerprint {fps['client_secret']}")
    grid.add_row("refresh token", f"fingerprint {fps['refresh_token']}")
    grid.add_row(
        "access token",
        f"fingerprint {fps['access_token']}, expires {document['expires_at']} "
        f"(in {human_duration((expires_at - now).total_seconds())})",
    )
    grid.add_row("credentials", f"{creds['name']} {creds['action']}, version {creds['version_id']}")
    grid.add_row(
        "access-token secret", f"{token['name']} {token['action']}, version {token['version_id'] or '-'}"
    )
    previous = document["previous_credentials"]
    if previous is not None:
        revoked = {True: "revoked at Zoho", False: "NOT revoked", None: "still valid at Zoho"}[
            previous["revoked"]
        ]
        grid.add_row(
            "previous credentials",
            f"version {previous['version_id']} kept as AWSPREVIOUS; its refresh token "
            f"{previous['refresh_token_fingerprint']} {revoked}",
        )
    out.result(f"Connection {document['connection']} bootstrapped (values are shown as fingerprints only)")
    if not out.quiet:
        out.out.print(grid)
    out.result(f"Next: zoho-token status --connection {document['connection']}")


# ---------------------------------------------------------------------------------------------------------
# revoke


@dataclass(frozen=True)
class RevokeOptions:
    connection: str
    yes: bool = False
    prefix: str | None = None
    region: str | None = None


def _read_for_revoke(
    store: SecretStore, name: str
) -> tuple[Versioned[Credentials], Versioned[AccessTokenState]]:
    """Both secrets, before anything is sent: a revocation that cannot be recorded is not started."""
    from lambda_refresh.models import AccessTokenState, InvalidSecretError, NotBootstrappedError
    from lambda_refresh.store import SecretMissingError, StoreError, Versioned

    try:
        credentials = store.read_credentials(name)
    except NotBootstrappedError:
        raise usage_error(
            f"connection {name} was never bootstrapped: there is no refresh token to revoke"
        ) from None
    except InvalidSecretError as err:
        raise CliError(
            f"secret {store.credentials_name(name)} is not valid credentials ({err}), so the refresh token "
            "cannot be read; revoke it in Zoho (Accounts > Security > Connected Apps)."
        ) from None
    except SecretMissingError as err:
        raise CliError(f"{err}; nothing was revoked") from None
    except StoreError as err:
        raise _read_failure(err.secret_name, err.aws_code) from None
    try:
        return credentials, store.read_access_token(name)
    except InvalidSecretError:
        # A broken access-token secret is ours to overwrite with the revoked state.
        try:
            raw, version_id = store.read_raw(store.access_token_name(name))
        except StoreError as err:
            raise _read_failure(err.secret_name, err.aws_code) from None
        return credentials, Versioned(AccessTokenState(dc=credentials.value.dc), version_id, raw)
    except SecretMissingError as err:
        raise CliError(f"{err}; nothing was revoked") from None
    except StoreError as err:
        raise _read_failure(err.secret_name, err.aws_code) from None


def run_revoke(options: RevokeOptions, out: Output, env: Mapping[str, str]) -> int:
    from lambda_refresh.models import fingerprint, validate_connection_name
    from lambda_refresh.store import SecretStore
    from lambda_refresh.zoho import AccountsUrlNotAllowedError, ZohoAccountsClient, ZohoError

    try:
        name = validate_connection_name(options.connection)
    except ValueError as err:
        raise usage_error(str(err)) from None
    prefix = resolve_prefix(options.prefix, env)
    allow_local = allow_local_accounts(env)
    aws = aws_session(options.region, env)
    with out.spinner(f"Reading connection {name}…"):
        caller = caller_arn(aws)
        store = SecretStore(aws.secretsmanager(), prefix=prefix)
        credentials, current = _read_for_revoke(store, name)
    creds = credentials.value
    fp = fingerprint(creds.refresh_token)
    try:
        client = ZohoAccountsClient(creds.accounts_url, allow_local=allow_local)
    except AccountsUrlNotAllowedError as err:
        raise CliError(
            f"secret {store.credentials_name(name)} names an accounts URL that is not allowed ({err}); nothing "
            "was sent. Revoke the token in Zoho (Accounts > Security > Connected Apps)."
        ) from None
    # A person at a terminal confirms; a script (no terminal) runs the contract's plain command.
    if not options.yes and stdin_is_interactive():
        answer = prompt_line(
            f"Revoke refresh token {fp} of connection {name} at Zoho ({creds.accounts_url})? Every access "
            "token made from it stops working now and the connection stays down until bootstrapped again. "
            "Type the connection name to confirm: ",
            what="confirmation",
            how="pass --yes",
        )
        if answer.strip() != name:
            raise usage_error("not confirmed; nothing was changed")
    try:
        with out.spinner(f"Revoking at {creds.accounts_url}…"):
            confirmed = client.revoke_refresh_token(creds.refresh_token)
    except ZohoError as err:
        raise CliError(
            f"Zoho did not confirm the revocation ({err.code}): {err.message} Nothing was changed; run this "
            "again."
        ) from None
    now = utc_now().replace(microsecond=0)
    message = (
        f"The refresh token was revoked by {caller} with 'zoho-token revoke'. Run 'zoho-token bootstrap "
        f"--connection {name} --replace' with a new grant code to reconnect."
    )
    version_id = _mark_revoked(store, name, current, credentials.version_id, caller, now, message)
    secret_name = store.access_token_name(name)
    if out.json_mode:
        out.print_json(
            {
                "schema": 1,
                "connection": name,
                "refresh_token_fingerprint": fp,
                "zoho_confirmed": confirmed,
                "revoked_at": iso(now),
                "revoked_by": caller,
                "access_token_secret": {"name": secret_name, "version_id": version_id},
            }
        )
    else:
        out.result(
            f"Refresh token {fp} of {name} {'revoked' if confirmed else 'was already invalid'} at Zoho."
        )
        if version_id is not None:
            out.result(f"{secret_name} now says status 'revoked' (by {caller} at {iso(now)}).")
    if version_id is None:
        out.error(
            f"the token is revoked at Zoho, but marking {secret_name} failed. Consumers will see Zoho reject "
            "the old token and the refresher records 'revoked' on its next attempt; run this again to record "
            "who revoked it."
        )
        return EXIT_FAILURE
    return EXIT_OK


def _mark_revoked(
    store: SecretStore,
    name: str,
    current: Versioned[AccessTokenState],
    credentials_version: str,
    caller: str,
    now: datetime,
    message: str,
) -> str | None:
    """Write status revoked and drop the dead token; the revocation wins over concurrent writers.

    Revoking a refresh token kills its access tokens at Zoho, so the token is removed in the same write:
    consumers then get a clear "revoked" error instead of a token Zoho rejects.
    """
    from lambda_refresh.models import AccessTokenState, ErrorInfo, InvalidSecretError, Status
    from lambda_refresh.store import ConcurrentWriteError, StoreError

    secret_name = store.access_token_name(name)
    base_version = current.version_id
    state = current.value
    for _ in range(5):
        new_state = state.with_changes(
            access_token=None,
            expires_at=None,
            status=Status.REVOKED,
            error=ErrorInfo(REVOKED_BY_OPERATOR, message, now),
            # The refresher parks a revoked connection until the credentials version changes.
            credentials_version=credentials_version,
            retry_not_before=None,
            extra={**state.extra, "revoked_at": iso(now), "revoked_by": caller},
        )
        try:
            return store.write_raw(secret_name, new_state.to_secret_string(), base_version_id=base_version)
        except ConcurrentWriteError:
            try:
                raw, base_version = store.read_raw(secret_name)
            except StoreError:
                return None
            try:
                state = AccessTokenState.from_secret_string(raw)
            except InvalidSecretError:
                state = AccessTokenState(dc=state.dc)
        except StoreError:
            return None
    return None
