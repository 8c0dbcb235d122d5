"""The app's stacks: the token sync itself, and the optional sample consumer in a stack of its own."""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_app.asset import SAMPLE_CONSUMER_HANDLER
from cdk_app.bundling import ARCHITECTURE, RUNTIME, sample_consumer_code
from cdk_app.config import AppConfig
from cdk_app.construct import ZohoTokenSync, ZohoTokenSyncProps
from cdk_app.nag import REDUNDANT_ROLE_DEPENDENCY, acknowledge, cfn_lint_ignore

_RETENTION: Final = {
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def props_from_config(config: AppConfig) -> ZohoTokenSyncProps:
    """The construct props an :class:`AppConfig` describes."""
    return ZohoTokenSyncProps(
        connections=config.connections,
        secret_prefix=config.secret_prefix,
        schedule_interval=Duration.minutes(config.schedule_minutes),
        refresh_margin=Duration.seconds(config.refresh_margin_seconds),
        alarm_email=config.alarm_email,
        log_retention=_RETENTION[config.log_retention_days],
        reserved_concurrency=config.reserved_concurrency,
        service_name=config.service_name,
    )


class ZohoTokenSyncStack(Stack):
    """One deployment of :class:`ZohoTokenSync` (``token_sync``), configured by an :class:`AppConfig`."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, **kwargs: Any) -> None:
        kwargs.setdefault(
            "description",
            f"{config.service_name} (zoho-token-sync): keeps Zoho OAuth access tokens fresh in Secrets Manager",
        )
        super().__init__(scope, construct_id, **kwargs)
        self.config: Final = config
        self.token_sync: Final = ZohoTokenSync(self, "TokenSync", props_from_config(config))
        # One deployment per stack: plain output names (`LogGroupName`, …) for operators and scripts.
        for name, output in self.token_sync.outputs.items():
            output.override_logical_id(name)
        for index, role in enumerate(config.operator_roles):
            # mutable: this stack attaches a policy with grant_operate's statements to the existing role.
            operator = (
                iam.Role.from_role_arn(self, f"Operator{index}", role, mutable=True)
                if role.startswith("arn:")
                else iam.Role.from_role_name(self, f"Operator{index}", role)
            )
            self.token_sync.grant_operate(operator)
            self.token_sync.grant_list_connections(operator)
            acknowledge(
                operator,
                "AwsSolutions-IAM5[Resource::*]",
                "secretsmanager:ListSecrets supports no resource-level permissions, so AWS requires "
                'Resource "*"; it returns secret names and metadata, never values. `zoho-token status` '
                "uses it to find the connections under the prefix. Every other statement names its "
                "resources exactly (grant_operate).",
            )


class SampleConsumerStack(Stack):
    """A consumer function in its own stack, reading one connection's token through the grant methods.

    It shows the cross-stack wiring: the grants land in this stack's role policy, so this stack depends
    on the token-sync stack and never the other way round.
    """

    def __init__(
        self, scope: Construct, construct_id: str, token_sync: ZohoTokenSync, connection: str, **kwargs: Any
    ) -> None:
        kwargs.setdefault("description", "zoho-token-sync sample consumer: reads a token via the grants")
        super().__init__(scope, construct_id, **kwargs)
        log_group = logs.LogGroup(self, "LogGroup", retention=logs.RetentionDays.ONE_MONTH)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="zoho-token-sync sample consumer",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        self.function: Final = lambda_.Function(
            self,
            "Function",
            description=f"zoho-token-sync sample consumer of connection {connection}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=SAMPLE_CONSUMER_HANDLER,
            code=sample_consumer_code(),
            role=role,
            log_group=log_group,
            timeout=Duration.seconds(30),
            memory_size=128,
            environment={
                "ZOHO_CONNECTION": connection,
                "ZOHO_SECRET_PREFIX": token_sync.props.secret_prefix,
                "ZOHO_REFRESH_FUNCTION": token_sync.function.function_name,
            },
        )
        cfn_lint_ignore(self.function, "W3005", REDUNDANT_ROLE_DEPENDENCY)
        token_sync.grant_read_access_token(self.function, connection)
        token_sync.grant_force_refresh(self.function)
