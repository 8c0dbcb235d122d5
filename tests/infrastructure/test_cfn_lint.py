"""cfn-lint on every synthesized template: no errors, no warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.infrastructure.conftest import Deployment

#: Regions the templates are linted for (resource and property availability differ per region).
REGIONS = ["us-east-1", "eu-central-1", "ap-south-1"]


def templates(deployment: Deployment) -> list[Path]:
    found = sorted(deployment.outdir.glob("*.template.json"))
    assert {p.name for p in found} == {
        f"{deployment.stack.stack_name}.template.json",
        f"{deployment.consumer_stack.stack_name}.template.json",
    }
    return found


@pytest.mark.parametrize("which", ["token-sync", "sample-consumer"])
def test_cfn_lint_finds_nothing(deployment: Deployment, which: str) -> None:
    token, consumer = (
        deployment.outdir / f"{deployment.stack.stack_name}.template.json",
        deployment.outdir / f"{deployment.consumer_stack.stack_name}.template.json",
    )
    assert set(templates(deployment)) == {token, consumer}
    template = token if which == "token-sync" else consumer
    matches = lint_file(template, ManualArgs(regions=REGIONS))
    assert [f"{m.rule.id} {m.message} ({m.path_string})" for m in matches] == []
