"""What goes into the Lambda assets and how they are assembled: locally, without Docker or network.

The refresher's asset is the ``lambda_refresh`` package plus the third-party packages pinned in
``cdk_app/asset-requirements.txt``. ``scripts/setup.sh test`` installs those, once, as wheels built for
the function's runtime and architecture (CPython :data:`ASSET_PYTHON_VERSION`, arm64) into
``.build/lambda-deps``; synthesis only copies files. The SDK for Python (boto3, botocore, s3transfer)
is never bundled: the Lambda runtime provides it.

This module imports nothing from aws-cdk-lib so that ``scripts/setup.sh`` can read
:data:`ASSET_PYTHON_VERSION` without starting the jsii runtime.
"""

from __future__ import annotations

import email.parser
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: CPython version of the Lambda runtime the asset is built for: the newest Python runtime that the
#: installed aws-cdk-lib offers (``aws_lambda.Runtime.PYTHON_3_14``; cdk-nag's AwsSolutions-L1 wants the
#: newest). ``scripts/setup.sh`` passes it to ``pip install --python-version``;
#: ``tests/infrastructure/test_asset.py`` checks that it matches the function's runtime.
ASSET_PYTHON_VERSION: Final = "3.14"
#: The wheel platform of the arm64 (Graviton) Lambda runtime, as passed to ``pip install --platform``.
ASSET_PLATFORM: Final = "manylinux2014_aarch64"

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
HANDLER_PACKAGE: Final = "lambda_refresh"
HANDLER: Final = "lambda_refresh.handler.lambda_handler"
HANDLER_PACKAGE_DIR: Final = REPO_ROOT / HANDLER_PACKAGE
LAMBDA_DEPS_DIR: Final = REPO_ROOT / ".build" / "lambda-deps"
REQUIREMENTS_FILE: Final = Path(__file__).with_name("asset-requirements.txt")
SAMPLE_CONSUMER_SOURCE: Final = Path(__file__).with_name("sample_consumer.py")
SAMPLE_CONSUMER_HANDLER: Final = "sample_consumer.lambda_handler"

#: Distributions the python3.14 Lambda runtime ships (the SDK for Python and its dependencies). The
#: first three must never be in the asset; see asset-requirements.txt for why jmespath and urllib3 are.
RUNTIME_PROVIDED: Final = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
NEVER_BUNDLED: Final = frozenset({"boto3", "botocore", "s3transfer"})

# Left out of every asset: byte code compiled for the build host, tests, type stubs, C sources, the
# console scripts pip writes to bin/ (they point at the build host's interpreter).
_EXCLUDED_DIRS: Final = frozenset({"__pycache__", "tests", "test"})
_EXCLUDED_TOP_DIRS: Final = frozenset({"bin"})
_EXCLUDED_DIR_SUFFIXES: Final = ("-stubs",)
_EXCLUDED_FILES: Final = frozenset({"py.typed", "conftest.py"})
_EXCLUDED_SUFFIXES: Final = (".pyc", ".pyo", ".pyi", ".c", ".h", ".pyx", ".pxd")
_TEST_MODULE = re.compile(r"^(test_.*|.*_test)\.py$")
_SETUP_HINT: Final = "run `scripts/setup.sh test` (it installs them for the Lambda runtime, without Docker)"


class AssetError(RuntimeError):
    """The asset cannot be assembled; the message says what to run."""


@dataclass(frozen=True)
class Requirement:
    """One exact pin of asset-requirements.txt."""

    name: str
    version: str

    @property
    def key(self) -> str:
        return normalize_name(self.name)


def normalize_name(name: str) -> str:
    """PEP 503 normalized distribution name (``Typing_Extensions`` -> ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path = REQUIREMENTS_FILE) -> list[Requirement]:
    """The exact pins of ``path``; anything but ``name==version`` lines and comments is an error."""
    pins: list[Requirement] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        if match is None:
            raise AssetError(f"{path.name}:{number}: expected an exact pin 'name==version', got {line!r}")
        pins.append(Requirement(match.group(1), match.group(2)))
    return pins


def installed_distributions(site_dir: Path) -> dict[str, str]:
    """``{normalized name: version}`` of the ``*.dist-info`` directories in ``site_dir``."""
    found: dict[str, str] = {}
    for info in sorted(site_dir.glob("*.dist-info")):
        metadata = info / "METADATA"
        if not metadata.is_file():
            continue
        headers = email.parser.Parser().parsestr(metadata.read_text(encoding="utf-8"), headersonly=True)
        if headers["Name"] and headers["Version"]:
            found[normalize_name(headers["Name"])] = headers["Version"]
    return found


def check_lambda_deps(deps_dir: Path = LAMBDA_DEPS_DIR, requirements: Path = REQUIREMENTS_FILE) -> None:
    """Raise :class:`AssetError` unless ``deps_dir`` holds exactly the pinned versions."""
    if not deps_dir.is_dir():
        raise AssetError(
            f"the Lambda asset's third-party packages are missing ({deps_dir} does not exist): {_SETUP_HINT}"
        )
    installed = installed_distributions(deps_dir)
    wrong = [
        f"{pin.name}=={pin.version} (found {installed.get(pin.key, 'none')})"
        for pin in read_requirements(requirements)
        if installed.get(pin.key) != pin.version
    ]
    if wrong:
        raise AssetError(f"{deps_dir} does not match {requirements.name}: {', '.join(wrong)}; {_SETUP_HINT}")
    bundled_sdk = sorted(NEVER_BUNDLED & installed.keys())
    if bundled_sdk:
        raise AssetError(
            f"{deps_dir} contains {', '.join(bundled_sdk)}, which the Lambda runtime provides; {_SETUP_HINT}"
        )


def is_excluded(relative: Path) -> bool:
    """Whether a file (path relative to the tree being copied) stays out of an asset."""
    *dirs, name = relative.parts
    if dirs and dirs[0] in _EXCLUDED_TOP_DIRS:
        return True
    for part in dirs:
        if part in _EXCLUDED_DIRS or part.endswith(_EXCLUDED_DIR_SUFFIXES):
            return True
    return name in _EXCLUDED_FILES or name.endswith(_EXCLUDED_SUFFIXES) or bool(_TEST_MODULE.match(name))


def _files(tree: Path) -> Iterator[Path]:
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not is_excluded(path.relative_to(tree)):
            yield path


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    # The zip CDK uploads keeps these modes; Lambda needs world-readable files.
    target.chmod(0o755 if source.suffix == ".so" else 0o644)


def _copy_tree(source: Path, target: Path) -> None:
    for path in _files(source):
        _copy_file(path, target / path.relative_to(source))


def assemble_refresher_asset(output_dir: Path) -> None:
    """Write the refresher's asset into ``output_dir``: ``lambda_refresh/`` and its third-party packages.

    Raises :class:`AssetError` (telling to run ``scripts/setup.sh test``) when ``.build/lambda-deps`` is
    missing or does not match ``asset-requirements.txt``.
    """
    check_lambda_deps()
    if not (HANDLER_PACKAGE_DIR / "handler.py").is_file():
        raise AssetError(f"{HANDLER_PACKAGE_DIR / 'handler.py'} is missing: the asset has no handler")
    _copy_tree(LAMBDA_DEPS_DIR, output_dir)
    _copy_tree(HANDLER_PACKAGE_DIR, output_dir / HANDLER_PACKAGE)


def assemble_sample_consumer_asset(output_dir: Path) -> None:
    """Write the sample consumer's asset: the consumer helper (stdlib + boto3 only) and a small handler.

    The helper keeps its import path (``lambda_refresh.consumer``) so the sample reads exactly like a
    consumer that vendors the file; the package's ``__init__`` is written empty so nothing else of the
    refresher is pulled in.
    """
    consumer = HANDLER_PACKAGE_DIR / "consumer.py"
    if not consumer.is_file():
        raise AssetError(f"{consumer} is missing: the sample consumer needs the consumer helper")
    package = output_dir / HANDLER_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "__init__.py").chmod(0o644)
    _copy_file(consumer, package / "consumer.py")
    _copy_file(SAMPLE_CONSUMER_SOURCE, output_dir / SAMPLE_CONSUMER_SOURCE.name)
