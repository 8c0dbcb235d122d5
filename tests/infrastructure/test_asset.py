"""The synthesized Lambda assets: right contents, built for python3.14/arm64, importable with only boto3.

The host runs CPython 3.11 on x86_64 while the asset targets CPython 3.14 on arm64, so its compiled
extensions (charset-normalizer's and wrapt's speedups) cannot be loaded here. They are checked by their
file tags and ELF headers instead, and the import test runs on the pure-Python fallbacks both packages
ship next to them — the same code paths those packages take wherever their extension is unavailable.
"""

from __future__ import annotations

import email.parser
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cdk_app.asset import (
    ASSET_PYTHON_VERSION,
    NEVER_BUNDLED,
    RUNTIME_PROVIDED,
    normalize_name,
    read_requirements,
)
from tests.infrastructure.conftest import Deployment, logical_id_by_path

#: Packages of the python3.14 Lambda runtime (the SDK and what it needs), taken from this venv.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
PY_TAG = "cpython-" + ASSET_PYTHON_VERSION.replace(".", "")
ELF_MACHINE_AARCH64 = 183
#: Lambda's limit for a zipped deployment package uploaded through S3 is 50 MB (250 MB unzipped).
ZIP_BUDGET = 10 * 1024 * 1024


def asset_dir(deployment: Deployment, template: dict[str, object], function_part: str) -> Path:
    resources = template["Resources"]
    assert isinstance(resources, dict)
    function = resources[logical_id_by_path(template, "AWS::Lambda::Function", function_part)]
    key = function["Properties"]["Code"]["S3Key"]
    path = deployment.outdir / f"asset.{key.removesuffix('.zip')}"
    assert path.is_dir(), path
    return path


@pytest.fixture(scope="module")
def refresher_asset(deployment: Deployment) -> Path:
    return asset_dir(deployment, deployment.json, "TokenSyncRefresher")


@pytest.fixture(scope="module")
def consumer_asset(deployment: Deployment) -> Path:
    return asset_dir(deployment, deployment.consumer_json, "Function")


def files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def zipped_size(root: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in files(root):
            archive.write(root / relative, str(relative))
    return buffer.tell()


def test_refresher_asset_holds_the_handler_package_and_exactly_the_pinned_packages(
    refresher_asset: Path,
) -> None:
    top = {p.name for p in refresher_asset.iterdir()}
    dist_infos = {n for n in top if n.endswith(".dist-info")}
    pins = read_requirements()
    assert {normalize_name(n.removesuffix(".dist-info").rsplit("-", 1)[0]) for n in dist_infos} == {
        p.key for p in pins
    }
    for pin in pins:
        assert any(
            n.lower() == f"{pin.name.replace('-', '_')}-{pin.version}.dist-info".lower() for n in dist_infos
        )
    assert (refresher_asset / "lambda_refresh" / "handler.py").is_file()
    assert (refresher_asset / "lambda_refresh" / "consumer.py").is_file()

    unzipped = sum((refresher_asset / f).stat().st_size for f in files(refresher_asset))
    zipped = zipped_size(refresher_asset)
    print(
        f"\nrefresher asset: {len(files(refresher_asset))} files, {unzipped / 1e6:.1f} MB, zipped {zipped / 1e6:.1f} MB"
    )
    assert zipped < ZIP_BUDGET


def test_refresher_asset_holds_no_sdk_tests_dev_files_or_other_packages(refresher_asset: Path) -> None:
    top = {p.name for p in refresher_asset.iterdir()}
    forbidden_top = {
        "boto3",
        "botocore",
        "s3transfer",
        "zoho_token",
        "cdk_app",
        "tests",
        "bin",
        "node_modules",
    }
    assert not top & forbidden_top
    assert not [n for n in top if normalize_name(n.split("-")[0]) in NEVER_BUNDLED]
    for relative in files(refresher_asset):
        parts = set(relative.parts)
        assert not parts & {"__pycache__", "tests", "test"}, relative
        assert relative.suffix not in {".pyc", ".pyo", ".pyi", ".c", ".h"}, relative
        assert not relative.name.startswith("test_"), relative
        assert "simulator" not in relative.name, relative
        assert not any(p.endswith("-stubs") for p in relative.parts), relative


def test_every_dependency_of_every_bundled_package_is_bundled_or_provided_by_the_runtime(
    refresher_asset: Path,
) -> None:
    environment = {  # the python3.14 arm64 Lambda runtime, for PEP 508 markers
        "python_version": ASSET_PYTHON_VERSION,
        "python_full_version": f"{ASSET_PYTHON_VERSION}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{ASSET_PYTHON_VERSION}.0",
        "platform_python_implementation": "CPython",
        "platform_machine": "aarch64",
        "platform_system": "Linux",
        "platform_release": "",
        "platform_version": "",
        "sys_platform": "linux",
        "os_name": "posix",
        "extra": "",
    }
    bundled = {normalize_name(p.key) for p in read_requirements()}
    missing: list[str] = []
    for metadata in refresher_asset.glob("*.dist-info/METADATA"):
        headers = email.parser.Parser().parsestr(metadata.read_text(encoding="utf-8"), headersonly=True)
        for line in headers.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            name = normalize_name(requirement.name)
            if name not in bundled and name not in RUNTIME_PROVIDED:
                missing.append(f"{headers['Name']} needs {requirement}")
    assert missing == []


def test_compiled_extensions_are_built_for_the_runtime_and_arm64(refresher_asset: Path) -> None:
    extensions = sorted(refresher_asset.rglob("*.so"))
    assert extensions, "expected charset-normalizer's and wrapt's speedups"
    for path in extensions:
        assert re.search(rf"\.({PY_TAG}-aarch64-linux-gnu|abi3)\.so$", path.name), path.name
        header = path.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", path.name
        assert header[4] == 2, path.name  # 64-bit
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64, path.name


def _runtime_dir(tmp_path: Path) -> Path:
    """A directory with just what the Lambda runtime provides (boto3 & co.), linked from this venv."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for module in RUNTIME_MODULES:
        imported = __import__(module)
        origin = Path(imported.__file__ or "")
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return runtime


def _clean_python(tmp_path: Path) -> Path:
    """A fresh venv without pip or site-packages: nothing of this project's environment leaks in."""
    venv = tmp_path / "clean"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # noqa: S603
    return venv / "bin" / "python"


IMPORT_CHECK = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]  # /var/task first, then the runtime's packages
import lambda_refresh.handler as handler
import boto3, requests, aws_lambda_powertools, aws_xray_sdk, charset_normalizer.md, wrapt
assert callable(handler.lambda_handler)
print(json.dumps({
    "handler": handler.__file__,
    "requests": requests.__file__,
    "powertools": aws_lambda_powertools.__file__,
    "boto3": boto3.__file__,
    "charset_normalizer_md": charset_normalizer.md.__file__,
    "paths": sys.path,
}))
"""


def test_refresher_asset_imports_in_a_clean_interpreter_with_only_boto3(
    refresher_asset: Path, tmp_path: Path
) -> None:
    import json

    python = _clean_python(tmp_path)
    runtime = _runtime_dir(tmp_path)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",  # leave the synthesized asset untouched
        "AWS_DEFAULT_REGION": "eu-central-1",
        "ZOHO_CONNECTIONS": "crm-eu",
        "POWERTOOLS_SERVICE_NAME": "zoho-token-sync",
    }
    result = subprocess.run(  # noqa: S603 - fixed command line
        [str(python), "-s", "-B", "-c", IMPORT_CHECK, str(refresher_asset), str(runtime)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    where = json.loads(result.stdout.strip().splitlines()[-1])
    assert where["handler"].startswith(str(refresher_asset))
    assert where["requests"].startswith(str(refresher_asset))
    assert where["powertools"].startswith(str(refresher_asset))
    assert where["boto3"].startswith(str(runtime))
    # On this host the pure-Python fallback is what loaded (the .so next to it is for 3.14/arm64).
    assert where["charset_normalizer_md"].endswith("md.py")
    site = [p for p in where["paths"] if "site-packages" in p]
    assert all(not any(Path(p).iterdir()) for p in site if Path(p).is_dir()), site


def test_sample_consumer_asset_is_the_helper_and_the_handler_only(
    consumer_asset: Path, tmp_path: Path
) -> None:
    assert [str(f) for f in files(consumer_asset)] == [
        "lambda_refresh/__init__.py",
        "lambda_refresh/consumer.py",
        "sample_consumer.py",
    ]
    assert (consumer_asset / "lambda_refresh" / "__init__.py").read_text() == ""
    python = _clean_python(tmp_path)
    runtime = _runtime_dir(tmp_path)
    script = (
        "import sys; sys.path[:0] = sys.argv[1:3]; import sample_consumer; print(sample_consumer.__file__)"
    )
    result = subprocess.run(  # noqa: S603 - fixed command line
        [str(python), "-s", "-B", "-c", script, str(consumer_asset), str(runtime)],
        env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(consumer_asset))
