"""What every source shares: the plan it makes for a model and what its fetch hands to the installer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fetcher.credentials.secrets import SecretStore
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.values import HttpsRepository, S3Repository, VolumeRepository
from fetcher.progress import FetchObserver

DEFAULT_MAX_MODEL_BYTES = 100 * 1024**3


@dataclass(frozen=True)
class FetchOptions:
    """Settings every source may need, from the command line."""

    secrets: SecretStore
    volumes_dir: Path
    ca_bundle: str | None = None
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    volume_mode: str = "link"  # "link" or "copy"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    model_timeout: float = 3600.0  # seconds one model's fetch may take in all
    transfer_concurrency: int = 4
    observer: FetchObserver = field(default_factory=FetchObserver)  # progress and metrics of the run


@dataclass(frozen=True)
class ModelPlan:
    """How one model will be fetched: what ``explain`` prints and what ``fetch`` follows."""

    spec: ModelSpec
    source: str  # "https", "volume" or "s3"
    repository: str | None
    location: str
    secret: str | None
    reason: str
    repository_config: HttpsRepository | VolumeRepository | S3Repository | None = None

    def explain(self) -> dict[str, str | None]:
        return {
            "name": self.spec.name,
            "uri": self.spec.uri.text,
            "source": self.source,
            "repository": self.repository,
            "location": self.location,
            "secret": self.secret,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class FetchedModel:
    """A model a source has fetched into its work folder, or a folder to link to as it is."""

    model_dir: Path  # holds config.pbtxt and/or numeric version folders
    bytes_transferred: int
    link: bool = False  # True: install a symbolic link to model_dir instead of moving it


class Source(Protocol):
    def fetch(self, plan: ModelPlan, workdir: Path) -> FetchedModel:
        """Fetch the planned model; everything written goes below ``workdir``."""
        ...
