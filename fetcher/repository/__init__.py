"""The Triton model repository root: atomic installs, removals and restores, and the manifest of what is installed."""
