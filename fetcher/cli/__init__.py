"""The ``model-fetcher`` command line."""
