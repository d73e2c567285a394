"""What every source shares: the plan it makes for a model and what its fetch hands to the installer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from fetcher.credentials.secrets import SecretStore
from fetcher.lease.model_spec import ModelSpec
from fetcher.lease.values import HttpsRepository, S3Repository, VolumeRepository
from fetcher.progress import FetchObserver
from fetcher.sources.shared_clients import SharedClients

if TYPE_CHECKING:
    from fetcher.cache.store import ModelCache


@dataclass(frozen=True)
class FetchOptions:
    """Settings every source may need, built by the command line; the defaults here are its defaults."""

    secrets: SecretStore
    volumes_dir: Path
    ca_bundle: str | None = None
    max_model_bytes: int = 100 * 1024**3
    volume_mode: str = "link"  # "link" or "copy"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    model_timeout: float = 3600.0  # seconds one model's fetch may take in all
    transfer_concurrency: int = 4
    change_check: bool = True  # compare an installed model's source validators (ETag...) on each check
    observer: FetchObserver = field(default_factory=FetchObserver)  # progress and metrics of the run
    cache: ModelCache | None = None  # the node's shared model cache (--cache-dir), if any
    clients: SharedClients = field(default_factory=SharedClients)  # made once, shared by the run's models


RepositoryConfig = HttpsRepository | VolumeRepository | S3Repository


class Target(Protocol):
    """What one model's source will fetch, typed by the source that planned it (its own dataclass)."""

    kind: ClassVar[str]  # "https", "volume" or "s3": the row of fetcher.plan.SOURCES

    @property
    def config(self) -> RepositoryConfig | None:
        """The values entry the plan follows (part of its fingerprint)."""
        ...


T = TypeVar("T", bound=Target, covariant=True)


@dataclass(frozen=True)
class ModelPlan(Generic[T]):
    """How one model will be fetched: what ``explain`` prints and what ``fetch`` follows."""

    spec: ModelSpec
    target: T
    location: str
    secret: str | None
    reason: str

    @property
    def source(self) -> str:
        return self.target.kind

    @property
    def repository(self) -> str | None:
        """The volume or s3 repository the model comes from (None for a model URL)."""
        config = self.target.config
        return None if config is None or isinstance(config, HttpsRepository) else config.repository_name

    def explain(self) -> dict[str, str | None]:
        return {
            "name": self.spec.name,
            "uri": self.spec.uri.shown,
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
    # What the source said the content was (ETags, sizes), recorded in the manifest; a later
    # ``Source.validators`` that differs means the content changed at the same URI.
    validators: dict[str, Any] | None = None


T_contra = TypeVar("T_contra", bound=Target, contravariant=True)


class Source(Protocol[T_contra]):
    def fetch(self, plan: ModelPlan[T_contra], workdir: Path) -> FetchedModel:
        """Fetch the planned model; everything written goes below ``workdir``.

        ``workdir`` may hold what an earlier, killed run of the same plan fetched: a source reuses
        only what its journal proves is still the same at the source.
        """
        ...

    def validators(self, plan: ModelPlan[T_contra]) -> dict[str, Any] | None:
        """What the source says about the model now, cheaply (no content), in the form of
        ``FetchedModel.validators``; None when the source cannot tell."""
        ...
