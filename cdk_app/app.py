"""The CDK app (``cdk.json``: ``.venv/bin/python -m cdk_app.app``).

Deploys one :class:`~cdk_app.stack.ZohoTokenSyncStack` configured by ``cdk_app/config.json`` and
``-c`` context (see :mod:`cdk_app.config`), plus the sample consumer stack with
``-c sample_consumer=true``. cdk-nag's AwsSolutions checks run on every synthesis and fail it on any
finding that is not acknowledged with a reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from cdk_app.asset import AssetError
from cdk_app.config import AppConfig, load_config
from cdk_app.connections import ConfigurationError
from cdk_app.stack import SampleConsumerStack, ZohoTokenSyncStack

SAMPLE_CONSUMER_STACK_SUFFIX = "SampleConsumer"


def build(app: App, config: AppConfig) -> ZohoTokenSyncStack:
    """Add the stacks of ``config`` and the cdk-nag checks to ``app``; return the token-sync stack."""
    stack = ZohoTokenSyncStack(app, config.stack_name, config)
    if config.sample_consumer:
        SampleConsumerStack(
            app,
            f"{config.stack_name}{SAMPLE_CONSUMER_STACK_SUFFIX}",
            token_sync=stack.token_sync,
            connection=config.consumer_connection,
        )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def main() -> int:
    app = App()
    try:
        config = load_config(app.node.try_get_context, base_dir=Path.cwd())
        build(app, config)
    except (ConfigurationError, AssetError) as error:
        print(f"cdk_app: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
