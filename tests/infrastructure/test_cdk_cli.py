"""The real ``npx cdk synth`` (the project's pinned CLI), offline, without AWS credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.infrastructure.conftest import REPO

pytestmark = pytest.mark.cdk_cli


def offline_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without AWS credentials, with every network path closed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        {
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "CDK_DISABLE_VERSION_CHECK": "true",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": os.environ[
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
            ],
            # No credentials, no profile, no instance metadata: synth must not need an account.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            # Anything that tries the network anyway goes to a closed local port and fails fast.
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9",
            "NO_PROXY": "",
        }
    )
    return env


def test_npx_cdk_synth_is_offline_quiet_and_clean(tmp_path: Path) -> None:
    npx = shutil.which("npx")
    assert npx, "npx not found: install Node.js and run scripts/setup.sh test"
    assert (REPO / "node_modules" / ".bin" / "cdk").exists(), "run scripts/setup.sh test (npm ci)"
    out = tmp_path / "cdk.out"
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - fixed command line
        [npx, "--no-install", "cdk", "synth", "--no-notices", "--quiet", "-o", str(out)],
        cwd=REPO,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - started
    print(f"\nnpx cdk synth: {elapsed:.1f} s\nstderr:\n{result.stderr}")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for noise in (
        "!!!",  # jsii's end-of-life banner
        "deprecated",
        "DEPRECATED",
        "feature flags are not configured",
        "NOTICES",
        "telemetry",
        "ECONNREFUSED",
        "Unable to",
    ):
        assert noise not in output, noise
    assert (out / "ZohoTokenSync.template.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "ZohoTokenSync" in manifest["artifacts"]
    report = json.loads((out / "validation-report.json").read_text())
    assert not [v for p in report.get("pluginReports", []) for v in p.get("violations", [])]


def test_cdk_json_runs_the_app_with_recommended_flags_and_no_telemetry() -> None:
    cdk_json = json.loads((REPO / "cdk.json").read_text())
    assert cdk_json["app"] == ".venv/bin/python -m cdk_app.app"
    assert cdk_json["notices"] is False
    context = cdk_json["context"]
    assert context["cli-telemetry"] is False
    recommended = json.loads(
        (REPO / "node_modules/aws-cdk/lib/init-templates/.recommended-feature-flags.json").read_text()
    )
    assert {k: context.get(k) for k in recommended} == recommended  # what `cdk init` writes
