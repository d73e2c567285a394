"""Model fetcher: lays a lease's models out as a Triton model repository."""

__version__ = "0.1.0"
