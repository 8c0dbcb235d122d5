"""Fixtures of the infrastructure tests: one full synthesis per session, offline, no AWS credentials.

The main app (token-sync stack with three connections, an operator role and a same-stack reader, plus
the sample consumer in its own stack) is synthesized once, with bundling and with cdk-nag's
AwsSolutions checks, exactly like ``cdk synth``; the tests read its templates and its asset.
Auxiliary synths (other props) skip bundling to stay fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _node_major() -> str:
    node = shutil.which("node")
    if node is None:
        return ""
    version = subprocess.run(  # noqa: S603 - node found on PATH, fixed arguments
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout
    return version.strip().lstrip("v").split(".")[0]


# Before aws_cdk is imported (it starts the jsii runtime): no end-of-life banner for the installed Node
# (the variable must hold its major version), and no telemetry.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", _node_major())
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from cdk_app.app import build  # noqa: E402
from cdk_app.config import AppConfig  # noqa: E402
from cdk_app.connections import Connection  # noqa: E402
from cdk_app.construct import ZohoTokenSync, ZohoTokenSyncProps  # noqa: E402
from cdk_app.stack import SampleConsumerStack, ZohoTokenSyncStack  # noqa: E402

TEST_CONNECTIONS = (
    Connection("crm-eu", "eu", health_probe_path="/crm/v8/users?type=CurrentUser"),
    Connection("books-us", "us"),
    Connection("desk-in", "in"),
)
TEST_CONFIG = AppConfig(
    connections=TEST_CONNECTIONS,
    alarm_email="oncall@example.com",
    service_name="zoho-token-sync-test",
    stack_name="ZohoTokenSyncTest",
    log_retention_days=731,
    sample_consumer=True,
    sample_consumer_connection="books-us",
    operator_roles=("zoho-operators", "arn:aws:iam::123456789012:role/team/zoho-admins"),
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cdk_cli: runs the real CDK CLI (npx cdk synth); ~10 s; deselect with -m 'not cdk_cli'"
    )


def cdk_json_context() -> dict[str, Any]:
    """The context of cdk.json (feature flags), so in-process synths match ``cdk synth``."""
    context = json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))["context"]
    assert isinstance(context, dict)
    return context


def new_app(outdir: Path, *, bundle: bool = True, **context: Any) -> App:
    """An App with cdk.json's context; ``bundle=False`` skips asset bundling (CDK's bundling-stacks)."""
    full = {**cdk_json_context(), **context}
    if not bundle:
        full["aws:cdk:bundling-stacks"] = []
    return App(outdir=str(outdir), context=full)


@dataclass
class Deployment:
    """The synthesized main app and what the tests look at."""

    app: App
    outdir: Path
    stack: ZohoTokenSyncStack
    consumer_stack: SampleConsumerStack
    template: Template
    consumer_template: Template
    operators: iam.Role
    same_stack_reader: iam.Role

    @property
    def sync(self) -> ZohoTokenSync:
        return self.stack.token_sync

    @property
    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    @property
    def consumer_json(self) -> dict[str, Any]:
        return dict(self.consumer_template.to_json())


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = new_app(outdir)
    stack = build(app, TEST_CONFIG)
    consumer = next(c for c in app.node.children if isinstance(c, SampleConsumerStack))
    operators = iam.Role(stack, "Operators", assumed_by=iam.AccountRootPrincipal())
    stack.token_sync.grant_operate(operators)
    reader = iam.Role(stack, "SameStackReader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    stack.token_sync.grant_read_access_token(reader, "desk-in")
    app.synth()  # runs cdk-nag; raises on any unacknowledged finding (and on a dependency cycle)
    return Deployment(
        app=app,
        outdir=outdir,
        stack=stack,
        consumer_stack=consumer,
        template=Template.from_stack(stack),
        consumer_template=Template.from_stack(consumer),
        operators=operators,
        same_stack_reader=reader,
    )


def synth_sync(
    tmp_path: Path,
    props: ZohoTokenSyncProps | Callable[[Stack], ZohoTokenSyncProps],
    *,
    stack_name: str = "Sync",
    nag: bool = False,
) -> tuple[App, ZohoTokenSync, dict[str, Any]]:
    """Synthesize one construct in a stack of its own (no bundling); return app, construct, template.

    ``props`` may be a function of the stack, to build props from constructs (a VPC, a key) in it.
    """
    app = new_app(tmp_path, bundle=False)
    stack = Stack(app, stack_name)
    sync = ZohoTokenSync(stack, "TokenSync", props(stack) if callable(props) else props)
    if nag:
        from aws_cdk import Validations
        from cdk_nag import AwsSolutionsChecks

        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return app, sync, dict(Template.from_stack(stack).to_json())


# ---------------------------------------------------------------------------------------------------
# Template helpers


def resources(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of ``cfn_type``."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


def logical_id(template: dict[str, Any], cfn_type: str, **properties: Any) -> str:
    """The one resource of ``cfn_type`` whose properties include ``properties``."""
    found = [
        k
        for k, v in resources(template, cfn_type).items()
        if all(v.get("Properties", {}).get(p) == value for p, value in properties.items())
    ]
    assert len(found) == 1, f"{cfn_type} {properties}: {found}"
    return found[0]


def logical_id_by_path(template: dict[str, Any], cfn_type: str, path_part: str) -> str:
    """The one resource of ``cfn_type`` whose logical id contains ``path_part``."""
    found = [k for k in resources(template, cfn_type) if path_part in k]
    assert len(found) == 1, f"{cfn_type} *{path_part}*: {found}"
    return found[0]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(s) for s in policy_document["Statement"]]


def normalized(statement: dict[str, Any]) -> tuple[str, tuple[str, ...], tuple[str, ...], str]:
    """(effect, sorted actions, sorted resources as JSON, conditions as JSON): comparable statements."""
    return (
        statement["Effect"],
        tuple(sorted(as_list(statement["Action"]))),
        tuple(sorted(json.dumps(r, sort_keys=True) for r in as_list(statement["Resource"]))),
        json.dumps(statement.get("Condition", {}), sort_keys=True),
    )


def ref(logical: str) -> dict[str, str]:
    return {"Ref": logical}


def get_att(logical: str, attribute: str = "Arn") -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical, attribute]}


def region_endpoint(service: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [f"{service}.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
