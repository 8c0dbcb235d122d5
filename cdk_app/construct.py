"""``ZohoTokenSync``: the reusable construct that keeps Zoho access tokens fresh in Secrets Manager.

Drop it into any stack::

    from cdk_app.connections import Connection
    from cdk_app.construct import ZohoTokenSync, ZohoTokenSyncProps

    sync = ZohoTokenSync(
        self,
        "ZohoTokens",
        ZohoTokenSyncProps(
            connections=[Connection("crm-eu", "eu"), Connection("books-us", "us")],
            alarm_email="oncall@example.com",
            service_name="zoho-token-sync-sales",
        ),
    )
    sync.grant_read_access_token(my_function, "crm-eu")   # a consumer, in this or another stack
    sync.grant_force_refresh(my_function)                  # may ask for a refresh on INVALID_TOKEN
    sync.grant_operate(ops_role)                           # zoho-token bootstrap/status/audit/refresh/revoke

What it creates (all exposed as attributes):

* per connection two secrets (``{prefix}{name}/credentials`` and ``{prefix}{name}/access-token``, see
  ``shared/contract.md``), encrypted with a customer-managed KMS key with rotation, kept on delete;
* the refresher Lambda (Python 3.14, arm64, X-Ray, reserved concurrency 1), invoked asynchronously by an
  EventBridge Scheduler schedule every 10 minutes; failed deliveries go to ``scheduler_dlq``, failed
  runs to ``failure_queue`` (no automatic retries: the next tick is the retry);
* alarms to an encrypted SNS topic, a dashboard, and the log group holding the audit trail.

Secrets Manager's own rotation is deliberately not used: it cannot run more often than every 4 hours,
and Zoho access tokens live 1 hour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from aws_cdk import (
    Aws,
    CfnOutput,
    Duration,
    RemovalPolicy,
    SecretValue,
    Tags,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_app.asset import HANDLER
from cdk_app.bundling import ARCHITECTURE, RUNTIME, refresher_code
from cdk_app.connections import ConfigurationError, Connection, check_unique
from cdk_app.limits import (
    LAMBDA_ENVIRONMENT_LIMIT,
    MAX_CONNECTIONS,
    MAX_PREFIX_LENGTH,
    environment_size,
)
from cdk_app.nag import REDUNDANT_ROLE_DEPENDENCY, acknowledge, cfn_lint_ignore
from lambda_refresh import models, telemetry
from lambda_refresh.telemetry import AlarmRule

#: Characters Secrets Manager allows in secret names (the prefix becomes part of them).
_SECRET_PREFIX: Final = re.compile(r"[A-Za-z0-9/_+=.@-]+")
#: Used in alarm and dashboard names, the ``service`` metric dimension and Powertools' logs.
_SERVICE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: The refresher must finish well inside one tick; Zoho calls time out after 10 s and are retried a
#: bounded number of times, with up to REFRESH_CONCURRENCY connections in parallel.
FUNCTION_TIMEOUT: Final = Duration.minutes(2)
FUNCTION_MEMORY_MB: Final = 256
#: Scheduler's own retries of a failed *delivery* (the Invoke call), before its dead-letter queue.
SCHEDULER_RETRY_ATTEMPTS: Final = 2
#: Failure queues keep messages for the maximum, 14 days, so a long weekend loses nothing.
QUEUE_RETENTION: Final = Duration.days(14)
#: SQS publishes its queue metrics every 5 minutes.
QUEUE_ALARM_PERIOD: Final = Duration.minutes(5)
_COMPARISONS: Final = {
    "GreaterThanOrEqualToThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    "LessThanOrEqualToThreshold": cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
}
#: What to do, appended to each rule's "why" in the alarm description (what on-call reads first).
_RUNBOOK: Final = {
    "RefreshFailures": "Run `zoho-token status` for the connection and error; the dashboard shows "
    "failures by error class.",
    "ConnectionNeedsAction": "Run `zoho-token status`, then re-bootstrap the connection "
    "(`zoho-token bootstrap --replace`).",
    "TokenNearlyExpired": "Consumers will soon get INVALID_TOKEN: check the refresher's log group and the "
    "two failure queues; before the first bootstrap this alarm is expected.",
    "HealthProbeFailed": "Run `zoho-token status`; if Zoho revoked the token, re-bootstrap.",
}
_DEFAULT_RUNBOOK: Final = "Run `zoho-token status` and read the refresher's log group."


def credentials_placeholder(connection: str) -> str:
    """The template value of a credentials secret: a placeholder that ``zoho-token bootstrap`` replaces.

    CloudFormation writes ``SecretString`` again only when this template value changes, so it must stay
    byte-for-byte stable for the life of a deployment; otherwise a routine ``cdk deploy`` would put the
    placeholder back over real credentials. Hence: sorted keys, no timestamps, no construct state, and
    only the connection name (already fixed by the secret's name) — not even the data center, because
    correcting a DC in the config must not wipe a bootstrapped secret. ``test_secrets.py`` pins the
    exact string; never change it.
    """
    return models.credentials_placeholder(connection)


def access_token_initial_value(connection: Connection) -> str:
    """The template value of an access-token secret: ``status: pending`` until the first refresh.

    Same stability rule as :func:`credentials_placeholder`: the refresher's writes survive every
    redeploy because this value never changes for a connection. It carries no DC either: a template
    value that changed with the DC would let a config correction overwrite a live token with
    ``pending``. The bootstrap and the refresher record the DC.

    The ``connection`` argument is kept so every placeholder is built the same way.
    """
    del connection  # the value is the same for every connection, by design
    return models.initial_access_token()


@dataclass(frozen=True)
class ZohoTokenSyncProps:
    """Configuration of :class:`ZohoTokenSync`. Only ``connections`` is required.

    Example::

        ZohoTokenSyncProps(
            connections=[Connection("crm-eu", "eu")],
            secret_prefix="zoho/",
            schedule_interval=Duration.minutes(10),
            refresh_margin=Duration.minutes(15),
            alarm_email="oncall@example.com",
            log_retention=logs.RetentionDays.ONE_YEAR,
            reserved_concurrency=1,        # None if the account's concurrency quota is small
        )
    """

    #: The connections this deployment manages (1 to ``MAX_CONNECTIONS``, unique names).
    connections: Sequence[Connection]
    #: Secret-name prefix; both secrets of a connection are named ``{prefix}{name}/…``.
    secret_prefix: str = "zoho/"  # noqa: S105 - a name prefix, not a secret
    #: How often the schedule invokes the refresher (whole minutes, 2-30, below the refresh margin).
    schedule_interval: Duration = field(default_factory=lambda: Duration.seconds(telemetry.TICK_SECONDS))
    #: Refresh a token when it expires within this margin (``REFRESH_MARGIN_SECONDS``; 2-50 minutes).
    refresh_margin: Duration = field(default_factory=lambda: Duration.minutes(15))
    #: Share of Zoho's 10-tokens-per-10-minutes allowance per refresh token (``ZOHO_TOKEN_BUDGET``).
    token_budget: int = 5
    #: Connections refreshed in parallel within one run (``REFRESH_CONCURRENCY``).
    refresh_concurrency: int = 16
    #: An existing key instead of a new one. Its policy must already allow CloudWatch (alarms to the
    #: encrypted topic) and CloudWatch Logs (the encrypted log group); see README.
    encryption_key: kms.IKey | None = None
    #: Email address subscribed to the alarm topic (confirm the subscription mail).
    alarm_email: str | None = None
    #: An existing topic for the alarms instead of a new, encrypted one.
    alarm_topic: sns.ITopic | None = None
    #: Retention of the log group holding the refresher's logs and audit events.
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    #: Reserved concurrency of the refresher: 1 serializes runs, so two never spend Zoho's budget at
    #: once. ``None`` for accounts whose concurrency quota cannot spare a reservation.
    reserved_concurrency: int | None = 1
    #: Run the refresher in this VPC (it needs egress to Zoho and to Secrets Manager, e.g. NAT).
    vpc: ec2.IVpc | None = None
    #: Subnets within ``vpc`` (default: the VPC's private subnets).
    vpc_subnets: ec2.SubnetSelection | None = None
    #: Stable name, unique per account and region: the ``service`` metric dimension, alarm and dashboard
    #: names, and the service in every log line. Give every deployment in an account its own.
    service_name: str = telemetry.DEFAULT_SERVICE
    #: CloudWatch namespace of the refresher's metrics.
    metrics_namespace: str = telemetry.DEFAULT_NAMESPACE


@dataclass(frozen=True)
class ConnectionSecrets:
    """The two secrets of one connection."""

    connection: Connection
    #: ``{prefix}{name}/credentials``: client id/secret and refresh token; refresher and operators only.
    credentials: secretsmanager.Secret
    #: ``{prefix}{name}/access-token``: what consumers read.
    access_token: secretsmanager.Secret


def validate_props(props: ZohoTokenSyncProps) -> None:
    """Raise :class:`ConfigurationError` with a clear message for invalid props."""
    connections = list(props.connections)
    if not connections:
        raise ConfigurationError("at least one connection is required")
    if len(connections) > MAX_CONNECTIONS:
        raise ConfigurationError(
            f"{len(connections)} connections given, at most {MAX_CONNECTIONS} per deployment (the "
            "refresher's IAM policy, 10,240 characters, must name two secrets per connection); split "
            "them over several deployments, each with its own service_name"
        )
    for connection in connections:
        if not isinstance(connection, Connection):
            raise ConfigurationError(f"connections must be Connection objects, got {connection!r}")
    check_unique(connections)
    prefix = props.secret_prefix
    if not (0 < len(prefix) <= MAX_PREFIX_LENGTH) or not _SECRET_PREFIX.fullmatch(prefix):
        raise ConfigurationError(
            f"secret_prefix {prefix!r}: use 1-{MAX_PREFIX_LENGTH} characters of A-Z a-z 0-9 / _ + = . @ -"
            " (e.g. zoho/)"
        )
    if not _SERVICE_NAME.fullmatch(props.service_name):
        raise ConfigurationError(
            f"service_name {props.service_name!r}: use 1-64 characters of A-Z a-z 0-9 _ -, starting with "
            "a letter or digit"
        )
    if not re.fullmatch(r"[A-Za-z0-9_./#:-]{1,255}", props.metrics_namespace):
        raise ConfigurationError(f"metrics_namespace {props.metrics_namespace!r} is not a valid namespace")
    tick = _whole_seconds(props.schedule_interval, "schedule_interval")
    margin = _whole_seconds(props.refresh_margin, "refresh_margin")
    if tick % 60 or not 120 <= tick <= 1800:
        raise ConfigurationError("schedule_interval must be a whole number of minutes from 2 to 30")
    if not tick < margin <= 3000:
        raise ConfigurationError(
            f"refresh_margin must be longer than schedule_interval ({tick} s), or a token can expire "
            "between two runs, and at most 50 minutes (Zoho tokens live 60; a larger margin refreshes "
            "every tick and spends Zoho's budget)"
        )
    if not 1 <= props.token_budget <= 10:
        raise ConfigurationError("token_budget must be 1-10 (Zoho allows 10 new tokens per 10 minutes)")
    if not 1 <= props.refresh_concurrency <= 64:
        raise ConfigurationError("refresh_concurrency must be 1-64")
    if props.reserved_concurrency is not None and not 1 <= props.reserved_concurrency <= 10:
        raise ConfigurationError(
            "reserved_concurrency must be 1-10, or None to reserve nothing (small concurrency quotas)"
        )
    if props.alarm_email is not None and not _EMAIL.match(props.alarm_email):
        raise ConfigurationError(f"alarm_email {props.alarm_email!r} is not an email address")
    if props.vpc_subnets is not None and props.vpc is None:
        raise ConfigurationError("vpc_subnets needs vpc")


def _whole_seconds(duration: Duration, name: str) -> int:
    seconds = duration.to_seconds()
    if seconds != int(seconds):
        raise ConfigurationError(f"{name} must be a whole number of seconds")
    return int(seconds)


class ZohoTokenSync(Construct):
    """Keeps the access tokens of Zoho connections fresh in Secrets Manager; see the module docstring.

    Attributes: ``props``, ``key``, ``secrets`` (connection name -> :class:`ConnectionSecrets`),
    ``function`` (its role: ``function.role``), ``log_group``, ``schedule`` and ``scheduler_role``,
    ``scheduler_dlq``, ``failure_queue``, ``alarm_topic``, ``alarms`` (short name -> alarm),
    ``dashboard``, ``security_group`` (with ``vpc`` only).
    """

    def __init__(self, scope: Construct, construct_id: str, props: ZohoTokenSyncProps) -> None:
        validate_props(props)
        super().__init__(scope, construct_id)
        self.props: Final = props
        self.connections: Final = tuple(props.connections)
        self.service_name: Final = props.service_name
        self.metrics_namespace: Final = props.metrics_namespace
        tick = int(props.schedule_interval.to_seconds())
        self._tick: Final = tick
        # Cost allocation: activate this tag in Billing to see what each deployment costs.
        Tags.of(self).add("zoho-token-sync:service", self.service_name)

        self.key: Final[kms.IKey] = props.encryption_key or self._create_key()
        self.secrets: Final[Mapping[str, ConnectionSecrets]] = self._create_secrets()
        self.log_group: Final = logs.LogGroup(
            self,
            "LogGroup",
            retention=props.log_retention,
            encryption_key=self.key,
            removal_policy=RemovalPolicy.RETAIN,  # the audit trail outlives the stack
        )
        self.scheduler_dlq: Final = self._failure_queue(
            "SchedulerDeadLetterQueue",
            "it is EventBridge Scheduler's dead-letter queue (deliveries that failed after retries)",
        )
        self.failure_queue: Final = self._failure_queue(
            "FailedRunsQueue",
            "it is the refresher's asynchronous on-failure destination (runs that raised or timed out)",
        )
        self.security_group: Final = self._create_security_group()
        self.function: Final = self._create_function()
        self.scheduler_role: Final = self._create_scheduler_role()
        self.schedule: Final = self._create_schedule(self.scheduler_role)
        self.alarm_topic: Final[sns.ITopic] = props.alarm_topic or self._create_topic()
        if props.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(props.alarm_email))
        self.alarms: Final[Mapping[str, cloudwatch.Alarm]] = self._create_alarms()
        self.dashboard: Final = self._create_dashboard()
        #: The CloudFormation outputs by name (LogGroupName, FunctionName, KeyArn, AlarmTopicArn,
        #: SecretPrefix, DashboardName); a stack holding one deployment may give them plain logical ids.
        self.outputs: Final = self._outputs()

    # ------------------------------------------------------------------------------------------------
    # Public API

    def credentials_secret(self, connection: str) -> secretsmanager.Secret:
        """The ``{prefix}{connection}/credentials`` secret."""
        return self._secrets_of(connection).credentials

    def access_token_secret(self, connection: str) -> secretsmanager.Secret:
        """The ``{prefix}{connection}/access-token`` secret."""
        return self._secrets_of(connection).access_token

    def grant_read_access_token(self, grantee: iam.IGrantable, connection: str) -> iam.Grant:
        """Let ``grantee`` read one connection's access token, and nothing else.

        ``secretsmanager:GetSecretValue`` on that access-token secret, and ``kms:Decrypt`` on the key
        only through Secrets Manager (``kms:ViaService``) and only for that secret's ciphertext
        (``kms:EncryptionContext:SecretARN``). Nothing on the credentials secret. The statements go to
        the grantee's own policy, so a grantee in another stack of the same app only makes that stack
        depend on this one (no cycle)::

            sync.grant_read_access_token(consumer_function, "crm-eu")
        """
        secret = self.access_token_secret(connection)
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["secretsmanager:GetSecretValue"],
            resource_arns=[secret.secret_arn],
        )
        return grant.combine(
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["kms:Decrypt"],
                resource_arns=[self.key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": _secretsmanager_endpoint(),
                        "kms:EncryptionContext:SecretARN": secret.secret_arn,
                    }
                },
            )
        )

    def grant_force_refresh(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` invoke the refresher, e.g. with ``{"connection": "crm-eu", "force": true}``.

        Only ``lambda:InvokeFunction`` on the function itself (no qualifiers: versions and aliases are
        not published). Refreshes stay rate-guarded by the refresher's share of Zoho's budget::

            sync.grant_force_refresh(consumer_function)
        """
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["lambda:InvokeFunction"],
            resource_arns=[self.function.function_arn],
        )

    def grant_operate(self, grantee: iam.IGrantable) -> iam.Grant:
        """What ``zoho-token bootstrap/status/audit/refresh/revoke`` need, for the operators' role.

        Read and write both secrets of every connection (Get/Put/Describe/ListSecretVersionIds,
        GetResourcePolicy), use the key through Secrets Manager only, and read the log group (the
        audit trail). Nothing else; ``sts:GetCallerIdentity`` needs no permission::

            sync.grant_operate(iam.Role.from_role_name(self, "Ops", "zoho-operators"))
        """
        arns = [
            arn
            for s in self.secrets.values()
            for arn in (s.credentials.secret_arn, s.access_token.secret_arn)
        ]
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetResourcePolicy",
                "secretsmanager:GetSecretValue",
                "secretsmanager:ListSecretVersionIds",
                "secretsmanager:PutSecretValue",
            ],
            resource_arns=arns,
        )
        grant = grant.combine(
            iam.Grant.add_to_principal(
                grantee=grantee,
                # PutSecretValue encrypts through GenerateDataKey; kms:Encrypt is never used.
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resource_arns=[self.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": _secretsmanager_endpoint()}},
            )
        )
        return grant.combine(
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["logs:FilterLogEvents", "logs:GetLogEvents"],
                resource_arns=[self.log_group.log_group_arn],
            )
        )

    def grant_list_connections(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` list secrets (names and metadata, never values), for ``zoho-token status``.

        ``status`` without ``--connection`` finds the connections under the prefix with
        ``secretsmanager:ListSecrets``, which supports no resource-level permissions: the grant is on
        ``"*"``, so it is separate from :meth:`grant_operate` and cdk-nag's IAM5 finding must be
        acknowledged where it lands (the app does so for its ``operator_roles``)::

            sync.grant_list_connections(ops_role)
        """
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["secretsmanager:ListSecrets"], resource_arns=["*"]
        )

    # ------------------------------------------------------------------------------------------------
    # Resources

    def _secrets_of(self, connection: str) -> ConnectionSecrets:
        try:
            return self.secrets[connection]
        except KeyError:
            raise ConfigurationError(
                f"unknown connection {connection!r}; this deployment manages: {', '.join(self.secrets)}"
            ) from None

    def _create_key(self) -> kms.Key:
        key = kms.Key(
            self,
            "Key",
            description=f"{self.service_name} (zoho-token-sync): Zoho OAuth secrets, alarm topic, audit log",
            enable_key_rotation=True,
            # Kept on delete: the retained secrets and log group stay readable only with it.
            removal_policy=RemovalPolicy.RETAIN,
        )
        account_and_region = {
            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnLike": {
                "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:"
                f"{self.service_name}-*"
            },
        }
        # Without this CloudWatch cannot publish to the encrypted topic and alarms never arrive.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheTopicKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=account_and_region,
            )
        )
        # CloudWatch Logs encrypts the log group with the key; only log groups of this account and region.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Decrypt*",
                    "kms:Describe*",
                    "kms:Encrypt*",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )
        return key

    def _create_secrets(self) -> Mapping[str, ConnectionSecrets]:
        scope = Construct(self, "Connections")
        # Secrets Manager rotation is not the mechanism here (minimum 4 h, Zoho tokens live 1 h): the
        # scheduled refresher rewrites the access token, and credentials change only by re-bootstrap.
        acknowledge(
            scope,
            "AwsSolutions-SMG4",
            "Secrets Manager rotation runs at most every 4 hours and Zoho access tokens live "
            "1 hour, so an EventBridge Scheduler schedule refreshes the access-token secrets every "
            "tick instead; the credentials secrets hold a Zoho refresh token that never expires "
            "and changes only when an operator re-bootstraps (zoho-token bootstrap --replace).",
        )
        prefix = self.props.secret_prefix
        secrets: dict[str, ConnectionSecrets] = {}
        for connection in self.connections:
            holder = Construct(scope, connection.name)
            credentials = secretsmanager.Secret(
                holder,
                "Credentials",
                secret_name=f"{prefix}{connection.name}/credentials",
                description=f"Zoho OAuth client and refresh token of connection {connection.name} "
                "(written by zoho-token bootstrap; refresher and operators only)",
                encryption_key=self.key,
                secret_string_value=SecretValue.unsafe_plain_text(credentials_placeholder(connection.name)),
                removal_policy=RemovalPolicy.RETAIN,
            )
            access_token = secretsmanager.Secret(
                holder,
                "AccessToken",
                secret_name=f"{prefix}{connection.name}/access-token",
                description=f"Current Zoho access token of connection {connection.name} "
                "(written by the refresher; what consumers read)",
                encryption_key=self.key,
                secret_string_value=SecretValue.unsafe_plain_text(access_token_initial_value(connection)),
                removal_policy=RemovalPolicy.RETAIN,
            )
            secrets[connection.name] = ConnectionSecrets(connection, credentials, access_token)
        return MappingProxyType(secrets)

    def _failure_queue(self, construct_id: str, what: str) -> sqs.Queue:
        # SSE-SQS, not the CMK: the senders (Scheduler's role, the function's role via Lambda) can
        # always use it, and a failure record holds no secret (the events are {} or a connection name).
        queue = sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=QUEUE_RETENTION,
        )
        acknowledge(
            queue,
            "AwsSolutions-SQS3",
            f"This queue is itself a dead-letter queue: {what}. cdk-nag only recognizes "
            "queues named in another queue's redrive policy or a function's DeadLetterConfig; an "
            "alarm fires as soon as it holds a message.",
        )
        return queue

    def _environment(self) -> dict[str, str]:
        props = self.props
        environment = {
            "ZOHO_SECRET_PREFIX": props.secret_prefix,
            "ZOHO_CONNECTIONS": ",".join(c.name for c in self.connections),
            "REFRESH_MARGIN_SECONDS": str(int(props.refresh_margin.to_seconds())),
            "ZOHO_TOKEN_BUDGET": str(props.token_budget),
            "REFRESH_CONCURRENCY": str(props.refresh_concurrency),
            "POWERTOOLS_SERVICE_NAME": self.service_name,
            "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        probes = {c.name: c.health_probe_path for c in self.connections if c.health_probe_path}
        if probes:
            environment["ZOHO_HEALTH_PROBES"] = json.dumps(probes, sort_keys=True, separators=(",", ":"))
        size = environment_size(environment)
        if size > LAMBDA_ENVIRONMENT_LIMIT:
            biggest = max(environment, key=lambda k: len(environment[k]))
            raise ConfigurationError(
                f"the refresher's environment would be {size} bytes, over Lambda's {LAMBDA_ENVIRONMENT_LIMIT}"
                f" (largest: {biggest}); use fewer connections or shorter health_probe_path values"
            )
        return environment

    def _create_security_group(self) -> ec2.SecurityGroup | None:
        if self.props.vpc is None:
            return None
        group = ec2.SecurityGroup(
            self,
            "RefresherSecurityGroup",
            vpc=self.props.vpc,
            description=f"{self.service_name} (zoho-token-sync) refresher: HTTPS out only",
            allow_all_outbound=False,
        )
        # Zoho's accounts servers and the AWS APIs (Secrets Manager, X-Ray, SQS) are all HTTPS.
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to Zoho and AWS APIs")
        return group

    def _create_function(self) -> lambda_.Function:
        props = self.props
        role = iam.Role(
            self,
            "RefresherRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.service_name} (zoho-token-sync): the refresher function",
        )
        credentials_arns = [s.credentials.secret_arn for s in self.secrets.values()]
        token_arns = [s.access_token.secret_arn for s in self.secrets.values()]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadCredentials",
                # DescribeSecret (metadata only): a parked connection watches for a new bootstrap by
                # the credentials' version id, without reading the value every tick.
                actions=["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                resources=credentials_arns,
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWriteTokens",
                actions=["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                resources=token_arns,
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="UseKeyViaSecretsManager",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": _secretsmanager_endpoint()}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        function = lambda_.Function(
            self,
            "Refresher",
            description=f"{self.service_name} (zoho-token-sync): refreshes Zoho access tokens in Secrets Manager",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=refresher_code(),
            role=role,
            environment=self._environment(),
            timeout=FUNCTION_TIMEOUT,
            memory_size=FUNCTION_MEMORY_MB,
            reserved_concurrent_executions=props.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            vpc=props.vpc,
            vpc_subnets=props.vpc_subnets,
            security_groups=[self.security_group] if self.security_group else None,
        )
        cfn_lint_ignore(function, "W3005", REDUNDANT_ROLE_DEPENDENCY)
        # Asynchronous invocations (the schedule's) are not retried by Lambda: the next tick is the
        # retry, and a retry would spend Zoho's budget twice. An event older than half a tick is
        # dropped to the failure queue rather than run late, so runs never pile up.
        function.configure_async_invoke(
            retry_attempts=0,
            max_event_age=self._max_event_age(),
            on_failure=destinations.SqsDestination(self.failure_queue),
        )
        wildcard_reason = (
            "X-Ray tracing (Tracing.ACTIVE): xray:PutTraceSegments and xray:PutTelemetryRecords support no "
            'resource-level permissions, so AWS requires Resource "*".'
        )
        if props.vpc is not None:
            # CDK adds these only to roles it creates itself; the same actions as the AWS managed
            # policy AWSLambdaVPCAccessExecutionRole, which also has them on "*".
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="VpcNetworkInterfaces",
                    actions=[
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:CreateNetworkInterface",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeSubnets",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            )
            wildcard_reason += (
                " VPC attachment: Lambda's ENI actions (ec2:CreateNetworkInterface, Describe*, Delete*, "
                "Assign/UnassignPrivateIpAddresses) take no resource-level permissions either, as in the "
                "AWS managed AWSLambdaVPCAccessExecutionRole."
            )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            wildcard_reason + " Every other statement of this role names its resources exactly.",
        )
        return function

    def _max_event_age(self) -> Duration:
        return Duration.seconds(max(60, self._tick // 2))

    def _create_scheduler_role(self) -> iam.Role:
        # L1 schedule rather than the L2 LambdaInvoke target: that one grants the function ARN *and* ``<arn>:*``
        # (all versions and aliases) to a stack-wide role; this role may invoke exactly one function and
        # write to exactly one queue, and only Scheduler in this account can assume it.
        # The statements are inline in the role itself, so they exist before the schedule can use it.
        return iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description=f"{self.service_name} (zoho-token-sync): EventBridge Scheduler invokes the refresher",
            inline_policies={
                "InvokeRefresher": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="InvokeRefresher",
                            actions=["lambda:InvokeFunction"],
                            resources=[self.function.function_arn],
                        ),
                        iam.PolicyStatement(
                            sid="DeadLetters",
                            actions=["sqs:SendMessage"],
                            resources=[self.scheduler_dlq.queue_arn],
                        ),
                    ]
                )
            },
        )

    def _create_schedule(self, role: iam.Role) -> scheduler.CfnSchedule:
        return scheduler.CfnSchedule(
            self,
            "Schedule",
            description=f"{self.service_name} (zoho-token-sync): refresh the Zoho access tokens that are due",
            schedule_expression=f"rate({self._tick // 60} minutes)",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.function.function_arn,
                role_arn=role.role_arn,
                input="{}",  # the contract's scheduled event: every due connection
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=SCHEDULER_RETRY_ATTEMPTS,
                    maximum_event_age_in_seconds=int(self._max_event_age().to_seconds()),
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                    arn=self.scheduler_dlq.queue_arn
                ),
            ),
        )

    def _create_topic(self) -> sns.Topic:
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{self.service_name} (zoho-token-sync) alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisDeployment",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
                        f"alarm:{self.service_name}-*"
                    },
                },
            )
        )
        return topic

    # ------------------------------------------------------------------------------------------------
    # Observability

    def metric(
        self,
        name: str,
        statistic: str,
        *,
        period: Duration | None = None,
        dimensions: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        """One of the refresher's metrics (namespace and ``service`` dimension filled in)."""
        return cloudwatch.Metric(
            namespace=self.metrics_namespace,
            metric_name=name,
            dimensions_map={"service": self.service_name, **(dimensions or {})},
            statistic=statistic,
            period=period or self.props.schedule_interval,
            label=label,
        )

    def _alarm(
        self,
        short_name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int = 1,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"Alarm{short_name}",
            alarm_name=f"{self.service_name}-{_kebab(short_name)}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            comparison_operator=comparison,
            treat_missing_data=missing,
        )
        action = cloudwatch_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm

    def _rule_alarm(self, rule: AlarmRule) -> cloudwatch.Alarm:
        """An alarm on one of the refresher's fleet-wide metrics, exactly as ``rule`` defines it.

        The rules live in ``lambda_refresh.telemetry``, next to the metric names the handler emits, and
        the local demo evaluates the same rules on the metrics it sees.
        """
        tick = self.props.schedule_interval
        threshold = rule.threshold_for(self._tick)
        # Where missing data is breaching, the period is one tick plus a minute: every window then holds
        # at least one run's datapoint despite scheduling jitter, so only a refresher that stops
        # reporting (not running, crashing, no connection bootstrapped yet) leaves a window empty.
        period = tick.plus(Duration.minutes(1)) if rule.missing_data_breaching else tick
        return self._alarm(
            rule.name,
            self.metric(rule.metric, rule.statistic, period=period),
            threshold=threshold,
            evaluation_periods=rule.evaluation_periods,
            datapoints_to_alarm=rule.datapoints_to_alarm,
            comparison=_COMPARISONS[rule.comparison],
            missing=(
                cloudwatch.TreatMissingData.BREACHING
                if rule.missing_data_breaching
                else cloudwatch.TreatMissingData.NOT_BREACHING
            ),
            description=f"{rule.why[:1].upper()}{rule.why[1:]}. {_RUNBOOK.get(rule.name, _DEFAULT_RUNBOOK)}",
        )

    def _create_alarms(self) -> Mapping[str, cloudwatch.Alarm]:
        probes = any(c.health_probe_path for c in self.connections)
        alarms = {
            rule.name: self._rule_alarm(rule)
            for rule in telemetry.ALARM_RULES
            # No probe configured: HealthProbeFailed is always 0, its alarm would only cost money.
            if probes or rule.metric != telemetry.HEALTH_PROBE_FAILED
        }
        alarms["SchedulerDeadLetters"] = self._alarm(
            "SchedulerDeadLetters",
            self.scheduler_dlq.metric_approximate_number_of_messages_visible(
                period=QUEUE_ALARM_PERIOD, statistic="Maximum"
            ),
            threshold=1,
            description="EventBridge Scheduler could not invoke the refresher (after its retries); the "
            "failed deliveries are in the scheduler dead-letter queue. Check the scheduler role and "
            "the function's quotas.",
        )
        alarms["FailedRuns"] = self._alarm(
            "FailedRuns",
            self.failure_queue.metric_approximate_number_of_messages_visible(
                period=QUEUE_ALARM_PERIOD, statistic="Maximum"
            ),
            threshold=1,
            description="A refresher run raised, timed out or was too old to run (no automatic retries: "
            "the next tick is the retry); the records are in the failed-runs queue, the errors in the "
            "log group.",
        )
        alarms["FunctionErrors"] = self._alarm(
            "FunctionErrors",
            self.function.metric_errors(period=self.props.schedule_interval, statistic="Sum"),
            threshold=1,
            description="The refresher crashed or timed out: a bug or an AWS problem, not a Zoho error "
            "(those are handled per connection). See the log group.",
        )
        return MappingProxyType(alarms)

    def _create_dashboard(self) -> cloudwatch.Dashboard:
        tick = self.props.schedule_interval
        tick_seconds = int(tick.to_seconds())
        names = ", ".join(c.name for c in self.connections)
        by_class = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{self.metrics_namespace},ErrorClass,service}} "
                f'MetricName="{telemetry.REFRESH_FAILURES_BY_CLASS}" service="{self.service_name}"\', '
                f"'Sum', {tick_seconds})"
            ),
            label="",
            period=tick,
        )
        per_connection = [
            self.metric(
                telemetry.SECONDS_UNTIL_EXPIRY, "Minimum", dimensions={"Connection": c.name}, label=c.name
            )
            for c in self.connections
        ]
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self.service_name)
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"## zoho-token-sync `{self.service_name}`\nConnections: {names}. "
                "Runbook: `zoho-token status`, then README (alarms section).",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Refreshes per run",
                left=[
                    self.metric(telemetry.REFRESH_SUCCEEDED, "Sum", label="refreshed"),
                    self.metric(telemetry.REFRESH_FAILED, "Sum", label="failed"),
                    self.metric(telemetry.CONNECTIONS_CHECKED, "Maximum", label="checked"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Soonest token expiry (seconds)",
                left=[
                    self.metric(
                        telemetry.MIN_SECONDS_UNTIL_EXPIRY, "Minimum", label="min seconds until expiry"
                    )
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=self._tick, label="alarm (one tick left)"),
                    cloudwatch.HorizontalAnnotation(
                        value=self.props.refresh_margin.to_seconds(), label="refresh margin"
                    ),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Connections needing a human",
                left=[
                    self.metric(
                        telemetry.CONNECTIONS_NEEDING_ACTION, "Maximum", label="revoked or misconfigured"
                    ),
                    self.metric(telemetry.HEALTH_PROBE_FAILED, "Sum", label="health probe failed"),
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Seconds until expiry per connection", left=per_connection, width=8),
            cloudwatch.GraphWidget(title="Refresh failures by error class", left=[by_class], width=8),
            cloudwatch.GraphWidget(
                title="Refresher function",
                left=[
                    self.function.metric_invocations(period=tick, statistic="Sum"),
                    self.function.metric_errors(period=tick, statistic="Sum"),
                    self.function.metric_throttles(period=tick, statistic="Sum"),
                ],
                right=[self.function.metric_duration(period=tick, statistic="Maximum")],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Failure queues (messages)",
                left=[
                    self.scheduler_dlq.metric_approximate_number_of_messages_visible(
                        period=QUEUE_ALARM_PERIOD, statistic="Maximum", label="scheduler dead letters"
                    ),
                    self.failure_queue.metric_approximate_number_of_messages_visible(
                        period=QUEUE_ALARM_PERIOD, statistic="Maximum", label="failed runs"
                    ),
                ],
                width=8,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=16, height=6
            ),
        )
        return dashboard

    def _outputs(self) -> Mapping[str, CfnOutput]:
        values = {
            "LogGroupName": (
                self.log_group.log_group_name,
                "Refresher logs and audit trail: zoho-token audit --log-group <this>",
            ),
            "FunctionName": (self.function.function_name, "Refresher function (force refresh: invoke it)"),
            "KeyArn": (self.key.key_arn, "KMS key of the secrets, the alarm topic and the log group"),
            "AlarmTopicArn": (self.alarm_topic.topic_arn, "Alarm notifications: subscribe on-call here"),
            "SecretPrefix": (
                self.props.secret_prefix,
                "zoho-token --prefix <this>; secrets are <prefix><connection>/credentials and /access-token",
            ),
            "DashboardName": (self.dashboard.dashboard_name, "CloudWatch dashboard of this deployment"),
        }
        return MappingProxyType(
            {
                name: CfnOutput(self, name, value=value, description=description)
                for name, (value, description) in values.items()
            }
        )


def _secretsmanager_endpoint() -> str:
    return f"secretsmanager.{Aws.REGION}.amazonaws.com"


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


__all__ = [
    "ConnectionSecrets",
    "ZohoTokenSync",
    "ZohoTokenSyncProps",
    "access_token_initial_value",
    "credentials_placeholder",
    "validate_props",
]
