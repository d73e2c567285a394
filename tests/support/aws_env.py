"""An environment with no AWS credentials anywhere, so S3 tests see only what they set up."""

from __future__ import annotations

import os
from pathlib import Path

AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_DEFAULT_REGION",
                 "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


def isolated_aws_environment(tmp: Path) -> dict[str, str]:
    """The environment with no AWS credentials anywhere, and no instance-metadata probe."""
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES}
    env.update({
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
    })
    return env
