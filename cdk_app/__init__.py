"""The CDK side of zoho-token-sync: a reusable construct and the app that deploys it.

* :mod:`cdk_app.construct` — ``ZohoTokenSync`` and ``ZohoTokenSyncProps`` (the reusable construct);
* :mod:`cdk_app.connections` — ``Connection`` and the name/DC rules;
* :mod:`cdk_app.stack`, :mod:`cdk_app.app`, :mod:`cdk_app.config` — the app behind ``cdk.json``;
* :mod:`cdk_app.asset`, :mod:`cdk_app.bundling` — the Lambda assets, bundled locally without Docker;
* :mod:`cdk_app.limits`, :mod:`cdk_app.nag` — the connection maximum and cdk-nag acknowledgments.

Nothing is imported here, so ``scripts/setup.sh`` can read ``cdk_app.asset.ASSET_PYTHON_VERSION``
without loading aws-cdk-lib.
"""
