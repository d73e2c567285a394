"""The Triton model repository root: atomic installs and model configs that agree with their names."""
