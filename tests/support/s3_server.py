"""Moved to devkit.s3_server (the demo uses it too); kept so older imports keep working."""

from devkit.s3_server import (  # noqa: F401
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    S3Endpoint,
    _wait_for_port,
    moto_s3,
    put_objects,
    rclone_binary,
    rclone_s3,
    write_bucket_files,
)
