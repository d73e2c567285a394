"""Sidecar mode: keep a running Triton's model repository in step with the lease's values files."""
