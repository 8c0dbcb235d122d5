"""cdk-nag acknowledgments: every one names its rule and carries a reason a reviewer can check.

``tests/infrastructure/test_nag.py`` walks the synthesized tree, counts the acknowledgments and checks
each reason, so a new one cannot slip in unnoticed.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct

#: Reasons shorter than this are not reasons ("not needed", "ok").
MIN_REASON_LENGTH: Final = 60
#: cfn-lint W3005 on every Lambda function with its own role: CDK adds DependsOn on the role *and* its
#: default policy (the policy must exist before the function runs); the role half is implied by the
#: Role GetAtt, which is all W3005 points out.
REDUNDANT_ROLE_DEPENDENCY: Final = (
    "CDK makes a function depend on its role and the role's policy; the role half is already implied by "
    "the Role GetAtt (W3005), the policy half is needed"
)


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge cdk-nag rule ``rule_id`` (e.g. ``AwsSolutions-SQS3``) on ``scope`` and its children."""
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(
            f"acknowledgment of {rule_id} needs a real reason (at least {MIN_REASON_LENGTH} chars)"
        )
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def cfn_lint_ignore(resource: IConstruct, check: str, reason: str) -> None:
    """Tell cfn-lint to skip ``check`` on ``resource`` (a CfnResource or an L2 with a default child).

    Only for findings in what CDK itself generates; ``reason`` documents why at the call site.
    """
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(
            f"ignoring cfn-lint {check} needs a real reason (at least {MIN_REASON_LENGTH} chars)"
        )
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to annotate")
    cfn.add_metadata("cfn-lint", {"config": {"ignore_checks": [check]}})
