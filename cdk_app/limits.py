"""The per-deployment connection maximum and the AWS limits it comes from.

One deployment (one construct) manages at most :data:`MAX_CONNECTIONS` connections. The tightest of
the limits below decides; ``tests/infrastructure/test_limits.py`` re-derives each figure from a
synthesized worst-case stack, so the arithmetic here cannot silently drift from the template.

1. IAM: the refresher's role carries one inline policy, and a role's inline policies may total at most
   10,240 characters (whitespace not counted). Each connection adds two secret ARNs of up to
   :data:`WORST_CASE_ARN_LENGTH` characters (with JSON quoting); the fixed statements (KMS, logs,
   X-Ray, the failure queue, and the ENI actions of the VPC variant) take up to
   :data:`POLICY_FIXED_CHARS` once CloudFormation has resolved the ARNs of a long stack name. With a
   prefix of up to :data:`MAX_PREFIX_LENGTH` characters and 63-character names:
   ``(10,240 - 1,500) / (2 x 182) = 24.0`` -> **24 connections**.
2. Lambda environment: all variables together may hold 4 KB. ``ZOHO_CONNECTIONS`` costs up to 64
   bytes per connection, the fixed variables about 400 bytes: ``(4,096 - 400) / 64 = 57`` connections
   without health probes (24 use about 1.9 KB, leaving 2 KB for probe paths). Probe paths are free-form, so the construct measures the real environment
   and rejects anything over 4 KB with a message naming the variable.
3. CloudFormation: 500 resources per stack. A deployment has about 30 fixed resources and 2 secrets per
   connection: ``(500 - 30) / 2 = 235`` connections.

More connections: deploy the construct more than once (each with its own ``service_name``), e.g. one
per team or per Zoho org; every deployment has its own function, key, alarms and dashboard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

#: Hard cap on connections per deployment (limit 1 above decides).
MAX_CONNECTIONS: Final = 24
#: Longest accepted secret-name prefix (the contract's default is ``zoho/``).
MAX_PREFIX_LENGTH: Final = 32
#: IAM: total size of a role's inline policies, whitespace excluded.
IAM_ROLE_INLINE_POLICY_LIMIT: Final = 10_240
#: Lambda: all environment variables of a function together.
LAMBDA_ENVIRONMENT_LIMIT: Final = 4_096
#: CloudFormation: resources per stack.
CFN_RESOURCES_PER_STACK: Final = 500
#: The longest ARN head of any partition and region, e.g.
#: ``arn:aws-iso-b:secretsmanager:us-isob-east-1:123456789012:secret:`` (64 characters); the name adds
#: prefix (32) + connection (63) + ``/access-token`` (13) + AWS's suffix ``-AbCdEf`` (7), and the policy
#: JSON 3 more for quotes and comma: 182.
LONGEST_SECRET_ARN_HEAD: Final = 64
WORST_CASE_ARN_LENGTH: Final = LONGEST_SECRET_ARN_HEAD + MAX_PREFIX_LENGTH + 63 + 13 + 7 + 3
#: Characters the refresher policy needs besides the per-connection secret ARNs, worst case (VPC
#: variant, 128-character stack name); ``test_limits.py`` measures it.
POLICY_FIXED_CHARS: Final = 1_500
#: Resources of one deployment that do not depend on the number of connections (measured by the test).
FIXED_RESOURCES: Final = 30


def environment_size(environment: Mapping[str, str]) -> int:
    """Size of an environment as compact JSON (UTF-8): at least what Lambda counts against 4 KB."""
    return len(json.dumps(dict(environment), separators=(",", ":")).encode())
