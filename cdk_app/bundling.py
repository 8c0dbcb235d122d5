"""Lambda code for the constructs: local bundling in Python, never Docker, never network.

CDK asks the ``local`` bundler first and falls back to Docker only if it returns ``False``; ours
never does: it either copies the files (see :mod:`cdk_app.asset`) or raises with the command to run.
The asset hash is the hash of the bundled output, so a change to the handler or to a pinned package
changes the deployed code, and nothing else does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingFileAccess,
    BundlingOptions,
    BundlingOutput,
    DockerImage,
    DockerVolume,
    ILocalBundling,
)
from aws_cdk import aws_lambda as lambda_

from cdk_app.asset import (
    ASSET_PYTHON_VERSION,
    HANDLER_PACKAGE_DIR,
    assemble_refresher_asset,
    assemble_sample_consumer_asset,
    check_lambda_deps,
)

#: The newest Python runtime of the installed aws-cdk-lib; the asset's wheels are built for it.
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64

# CDK requires an image in BundlingOptions even when local bundling always succeeds. It is never pulled:
# _LocalCopy.try_bundle returns True or raises.
_UNUSED_IMAGE = DockerImage.from_registry(f"public.ecr.aws/sam/build-python{ASSET_PYTHON_VERSION}")


@jsii.implements(ILocalBundling)
class _LocalCopy:
    """ILocalBundling that runs a Python function writing the asset into CDK's output directory."""

    def __init__(self, assemble: Callable[[Path], None]) -> None:
        self._assemble = assemble

    def try_bundle(
        self,
        output_dir: str,
        *,
        image: DockerImage,
        bundling_file_access: BundlingFileAccess | None = None,
        command: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        local: ILocalBundling | None = None,
        network: str | None = None,
        output_type: BundlingOutput | None = None,
        platform: str | None = None,
        security_opt: str | None = None,
        user: str | None = None,
        volumes: Sequence[DockerVolume | dict[str, object]] | None = None,
        volumes_from: Sequence[str] | None = None,
        working_directory: str | None = None,
    ) -> bool:
        self._assemble(Path(output_dir))
        return True


def _local_code(name: str, source: Path, assemble: Callable[[Path], None]) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            image=_UNUSED_IMAGE,
            local=_LocalCopy(assemble),
            output_type=BundlingOutput.NOT_ARCHIVED,
            # CDK caches staged assets per process by source path and bundling options, not by the
            # local bundler: without this, every asset bundled from the same directory would share
            # the first one's output (the sample consumer would ship the refresher).
            environment={"ZOHO_TOKEN_SYNC_ASSET": name},
        ),
    )


def refresher_code() -> lambda_.Code:
    """The refresher's code: ``lambda_refresh/`` plus ``.build/lambda-deps`` (see ``asset.py``).

    Raises :class:`cdk_app.asset.AssetError` right away, before synthesis, if the third-party packages
    are missing or stale, with the command that installs them.
    """
    check_lambda_deps()
    return _local_code("refresher", HANDLER_PACKAGE_DIR, assemble_refresher_asset)


def sample_consumer_code() -> lambda_.Code:
    """The sample consumer's code: ``lambda_refresh/consumer.py`` and ``cdk_app/sample_consumer.py``."""
    return _local_code("sample-consumer", HANDLER_PACKAGE_DIR, assemble_sample_consumer_asset)
