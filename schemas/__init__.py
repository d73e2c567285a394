"""JSON Schemas shipped with the fetcher as ``fetcher.schemas`` (see pyproject.toml)."""
