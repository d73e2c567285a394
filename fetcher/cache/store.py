"""The cache folder shared by the pods of a node: entries, their index, the pods' leases, locks, eviction.

Layout of the cache folder:

    .lock                 flock: the index and the leases change under it (held briefly)
    index.json            every entry: its size, its files (size, sha256, mtime, ctime), last use, location
    entries/<key>/model/  an entry's model folder, read-only once sealed; repositories link to it
    locks/<key>.lock      flock: one fill of an entry at a time; other fetchers of the node wait on it
    staging/              fills in progress, on the cache's filesystem, moved in with one rename
    pods/<pod>.lock       flock held (shared) while the pod runs: its fetcher, its sidecar, its Triton
    pods/<pod>.json       the entries the pod's repository links to

Repositories link to entries (no copy: a 1 GiB model is linked in well under a millisecond here,
copied in 1.2 to 9 s), so an entry a pod links to must outlive the pod's use of it: eviction skips
the entries named by a live pod's lease, one whose lock file is held, or whose lease was written
less than ``lease_grace`` seconds ago (the gap between an init container's end and Triton's start).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from fetcher.cache.keys import announced_size, cache_key, source_validators
from fetcher.errors import CacheError
from fetcher.file_digest import sha256_hex
from fetcher.logs import get_logger
from fetcher.model_folder import CONFIG_NAME, configured_name
from fetcher.sources.base import FetchedModel, FetchOptions, ModelPlan

if TYPE_CHECKING:
    from fetcher.metrics import FetchMetrics

INDEX_NAME = "index.json"
LOCK_POLL_SECONDS = 0.1
STALE_LEASE_SECONDS = 24 * 3600  # an unlocked lease older than this is deleted
_IGNORED_DIRS = frozenset({"__pycache__"})  # Triton's python backend compiles model.py beside it


@dataclass(frozen=True)
class CacheSettings:
    root: Path
    max_bytes: int
    pod_id: str
    lease_grace: float = 900.0  # seconds an unlocked lease still protects its entries
    wait_timeout: float = 3600.0  # longest wait for another fetcher's fill of the same entry


class ModelCache:
    """One process's handle on the shared cache; holds its pod's lease lock while it lives.

    ``metrics`` (the run's FetchMetrics) counts its events and the bytes evicted.
    """

    def __init__(self, settings: CacheSettings, metrics: FetchMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.root = settings.root
        self.log = get_logger()
        try:
            for folder in ("entries", "locks", "staging", "pods"):
                (self.root / folder).mkdir(parents=True, exist_ok=True)
            self._pod_fd = os.open(self._pod_lock_path(settings.pod_id), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CacheError(f"cannot use the cache folder {str(self.root)!r}: {exc.strerror}",
                             hint="mount a writable --cache-dir, or run without it") from None
        fcntl.flock(self._pod_fd, fcntl.LOCK_SH)

    def close(self) -> None:
        os.close(self._pod_fd)

    # -- what the runner calls -----------------------------------------------------------------

    def provide(self, plan: ModelPlan[Any], options: FetchOptions, workdir: Path,
                fill: Callable[[Path], FetchedModel]) -> FetchedModel:
        """The model from its entry (filled by ``fill`` first when missing or damaged), for ``workdir``'s install."""
        name = plan.spec.name
        validators = source_validators(plan, options)  # the tenant rule: asked with the pod's own credentials
        key = cache_key(plan, validators)
        if key is None:
            self._count("bypass")
            self.log.info("model=%s event=cache-bypass detail=the source gives no validator (ETag, Last-Modified) "
                          "and the spec no sha256: fetched without the cache", name)
            return fill(workdir)
        announced = announced_size(validators)
        if announced > self.settings.max_bytes:
            self._count("full")
            self.log.warning("model=%s event=cache-full bytes=%d limit=%d detail=larger than the cache; fetched "
                             "into the pod's own repository", name, announced, self.settings.max_bytes)
            return fill(workdir)
        with self._key_lock(key, name):
            entry = self._reuse(key, name)
            if entry is not None:
                self._count("hit")
                options.observer.model(name).reused("cache", entry["size"])
                self.log.info("model=%s event=cache-hit key=%s bytes_saved=%d", name, key[:12], entry["size"])
                return self._hand_out(plan, self.entry_dir(key), workdir, validators)
            self._count("miss")
            self.log.info("model=%s event=cache-miss key=%s", name, key[:12])
            return self._fill(plan, key, workdir, fill, validators)

    def _count(self, event: str, evicted_bytes: int = 0) -> None:
        if self.metrics is not None:
            self.metrics.cache_event(event, evicted_bytes)

    def keep_only(self, repository_root: Path) -> None:
        """Make the pod's lease name exactly the entries its repository links to now."""
        entries = (self.root / "entries").resolve()
        keys: set[str] = set()
        for link in repository_root.iterdir():
            if link.is_symlink():
                target = Path(os.path.realpath(link))
                if target.parent.parent == entries:
                    keys.add(target.parent.name)
        with self._global_lock():
            self._write_lease(keys)

    def entry_dir(self, key: str) -> Path:
        return self.root / "entries" / key / "model"

    # -- reuse -------------------------------------------------------------------------------

    def _reuse(self, key: str, name: str) -> dict[str, Any] | None:
        with self._index() as index:
            entry = index.get(key)
            if entry is None:
                return None
            problem = _damage(self.entry_dir(key), entry["files"])
            if problem is None:
                entry["last_used"] = time.time()
                self._add_to_lease(key)
                return entry
            self._count("corrupt")
            self.log.warning("model=%s event=cache-corrupt key=%s detail=%s; fetched again", name, key[:12], problem)
            del index[key]
            self._remove_entry(key)
            return None

    def _hand_out(self, plan: ModelPlan[Any], model: Path, workdir: Path, validators: dict[str, Any] | None,
                  transferred: int = 0) -> FetchedModel:
        """A link to the entry; a writable copy when the lease renames the model (the entry is shared).
        ``validators`` go to the manifest, for the change check of the installed model."""
        config = model / CONFIG_NAME
        if config.is_file() and configured_name(config) != plan.spec.name:
            copy = workdir / "model"
            shutil.rmtree(copy, ignore_errors=True)  # a copy a killed run left in its resumable work folder
            shutil.copytree(model, copy, ignore=shutil.ignore_patterns(*_IGNORED_DIRS))
            _make_writable(copy)
            return FetchedModel(model_dir=copy, bytes_transferred=transferred, validators=validators)
        return FetchedModel(model_dir=model, bytes_transferred=transferred, link=True, validators=validators)

    # -- fill --------------------------------------------------------------------------------

    def _fill(self, plan: ModelPlan[Any], key: str, workdir: Path, fill: Callable[[Path], FetchedModel],
              validators: dict[str, Any] | None) -> FetchedModel:
        name = plan.spec.name
        for leftover in (self.root / "staging").glob(f"{key}-*"):  # a killed fill of this entry
            _remove_tree(leftover)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=self.root / "staging"))
        try:
            fetched = fill(staging)
            if fetched.validators is not None and validators is not None and fetched.validators != validators:
                # The content changed between the question and the download: it is not what the key names.
                self._count("skip")
                self.log.warning("model=%s event=cache-skip detail=the source's content changed during the "
                                 "download; installed without storing it in the cache", name)
                return self._own_copy(fetched, workdir)
            files = _seal(fetched.model_dir)
            size = sum(record[0] for record in files.values())
            with self._index() as index:
                if self._make_room(index, size, key):
                    self._remove_entry(key)  # an orphan folder a crash left without an index line
                    (self.root / "entries" / key).mkdir()
                    os.rename(fetched.model_dir, self.entry_dir(key))
                    _seal_folders(self.entry_dir(key))
                    index[key] = {"size": size, "files": files, "last_used": time.time(), "created": time.time(),
                                  "location": plan.location}
                    self._add_to_lease(key)
                    stored = True
                else:
                    stored = False
            if stored:
                self._count("stored")
                self.log.info("model=%s event=cache-stored key=%s bytes=%d", name, key[:12], size)
                return self._hand_out(plan, self.entry_dir(key), workdir, validators, fetched.bytes_transferred)
            self._count("full")
            self.log.warning("model=%s event=cache-full bytes=%d limit=%d detail=entries in use leave no room; "
                             "installed from the pod's own copy", name, size, self.settings.max_bytes)
            return self._own_copy(fetched, workdir)
        except OSError as exc:
            raise CacheError(f"model {name!r}: cannot write the cache entry in {str(self.root)!r}: {exc.strerror}",
                             hint="check the cache volume's space and permissions") from None
        finally:
            _remove_tree(staging)

    @staticmethod
    def _own_copy(fetched: FetchedModel, workdir: Path) -> FetchedModel:
        """The fetched model moved out of the cache's staging into the pod's work folder."""
        own = workdir / "model"
        shutil.rmtree(own, ignore_errors=True)  # a copy a killed run left in its resumable work folder
        shutil.move(str(fetched.model_dir), own)
        _make_writable(own)
        return dataclasses.replace(fetched, model_dir=own)

    # -- eviction ----------------------------------------------------------------------------

    def _make_room(self, index: dict[str, Any], incoming: int, key: str) -> bool:
        """Evict unused entries, least recently used first, until ``incoming`` bytes fit; False if they cannot."""
        limit = self.settings.max_bytes
        if incoming > limit:
            return False
        for folder in (self.root / "entries").iterdir():
            if folder.name not in index and folder.name != key:
                _remove_tree(folder)  # not in the index: a crash between rename and index write
        self._clear_killed_fills()
        needed = self._live_keys()
        total = sum(entry["size"] for entry in index.values())
        for old_key in sorted((k for k in index if k not in needed and k != key), key=lambda k: index[k]["last_used"]):
            if total + incoming <= limit:
                break
            size = index.pop(old_key)["size"]
            self._remove_entry(old_key)
            total -= size
            self._count("evict", evicted_bytes=size)
            self.log.info("event=cache-evict key=%s bytes=%d detail=least recently used, in no running pod's lease",
                          old_key[:12], size)
        return total + incoming <= limit

    def _clear_killed_fills(self) -> None:
        """Staging folders whose entry nobody is filling (a fetcher killed midway) are removed."""
        for folder in (self.root / "staging").iterdir():
            key = folder.name.removeprefix("evicted-").split("-", 1)[0]
            if not self._is_locked_path(self.root / "locks" / f"{key}.lock"):
                _remove_tree(folder)

    def _live_keys(self) -> set[str]:
        """The entries some running pod may link to."""
        needed: set[str] = set()
        now = time.time()
        for lease in (self.root / "pods").glob("*.json"):
            pod = lease.stem
            try:
                age = now - lease.stat().st_mtime
                keys = json.loads(lease.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if pod == self.settings.pod_id or age < self.settings.lease_grace or self._is_locked(pod):
                needed.update(k for k in keys if isinstance(k, str))
            elif age > STALE_LEASE_SECONDS:
                lease.unlink(missing_ok=True)
        return needed

    def _is_locked(self, pod: str) -> bool:
        return self._is_locked_path(self._pod_lock_path(pod))

    @staticmethod
    def _is_locked_path(path: Path) -> bool:
        """Does some process hold a lock on ``path``? (False when it does not exist.)"""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            return exc.errno in (errno.EAGAIN, errno.EACCES)
        finally:
            os.close(fd)
        return False

    def _remove_entry(self, key: str) -> None:
        folder = self.root / "entries" / key
        if folder.exists():
            trash = self.root / "staging" / f"evicted-{key}-{os.getpid()}"
            os.rename(folder, trash)  # gone from entries/ at once, deleted after
            _remove_tree(trash)

    # -- leases, locks and the index ---------------------------------------------------------

    def _pod_lock_path(self, pod: str) -> Path:
        return self.root / "pods" / f"{pod}.lock"

    def _lease_path(self) -> Path:
        return self.root / "pods" / f"{self.settings.pod_id}.json"

    def _add_to_lease(self, key: str) -> None:
        """Under the global lock: the pod's lease gains ``key`` before the entry is handed out."""
        try:
            keys = set(json.loads(self._lease_path().read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            keys = set()
        self._write_lease(keys | {key})

    def _write_lease(self, keys: set[str]) -> None:
        _write_json(self._lease_path(), sorted(keys))

    @contextmanager
    def _global_lock(self) -> Iterator[None]:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _index(self) -> Iterator[dict[str, Any]]:
        """The index, under the global lock, written back when the block ends without an error."""
        with self._global_lock():
            path = self.root / INDEX_NAME
            try:
                index = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                index = {}  # none yet, or unreadable: entries are fetched again, which is always safe
            if not isinstance(index, dict):
                index = {}
            yield index
            _write_json(path, index)

    @contextmanager
    def _key_lock(self, key: str, name: str) -> Iterator[None]:
        """One fetcher of the node fills an entry; the others wait here, then reuse it."""
        fd = os.open(self.root / "locks" / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            started = time.monotonic()
            waited = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if not waited:
                    self._count("wait")
                    self.log.info("model=%s event=cache-wait key=%s detail=another fetcher of the node is "
                                  "filling this entry", name, key[:12])
                    waited = True
                if time.monotonic() - started > self.settings.wait_timeout:
                    raise CacheError(f"model {name!r}: waited {self.settings.wait_timeout:.0f}s for another "
                                     "fetcher of the node to fill the cache entry",
                                     hint="raise --model-timeout, or look for a stuck fetcher on the node")
                time.sleep(LOCK_POLL_SECONDS)
            if waited:
                self.log.info("model=%s event=cache-waited seconds=%.2f", name, time.monotonic() - started)
            yield
        finally:
            os.close(fd)


def _seal(model_dir: Path) -> dict[str, list[Any]]:
    """Make the files read-only and record each one's size, sha256, mtime and ctime."""
    files: dict[str, list[Any]] = {}
    for base, dirs, names in os.walk(model_dir):
        dirs[:] = [d for d in dirs if d not in _IGNORED_DIRS]
        for file_name in names:
            path = Path(base) / file_name
            if path.is_symlink() or not path.is_file():
                raise CacheError(f"{str(path)!r} is not a regular file; it cannot enter the cache")
            os.chmod(path, 0o444)
            info = path.stat()
            files[str(path.relative_to(model_dir))] = [info.st_size, sha256_hex(path), info.st_mtime_ns, info.st_ctime_ns]
    return files


def _seal_folders(model_dir: Path) -> None:
    for base, dirs, _names in os.walk(model_dir, topdown=False):
        os.chmod(base, 0o555)


def _damage(model_dir: Path, recorded: dict[str, list[Any]]) -> str | None:
    """Why the entry cannot be handed out (a file missing, added, of another size or digest), or None.

    Sizes are checked always; a file's sha256 is computed again when its mtime or ctime moved (a
    write changes both, and ctime cannot be set back), so an untouched entry costs one stat per file.
    """
    if not model_dir.is_dir():
        return "its folder is missing"
    seen: set[str] = set()
    for base, dirs, names in os.walk(model_dir):
        dirs[:] = [d for d in dirs if d not in _IGNORED_DIRS]
        for file_name in names:
            path = Path(base) / file_name
            relative = str(path.relative_to(model_dir))
            seen.add(relative)
            record = recorded.get(relative)
            if record is None:
                return f"{relative} is not part of the entry"
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_size != record[0]:
                return f"{relative} has {info.st_size} bytes, not {record[0]}"
            if [info.st_mtime_ns, info.st_ctime_ns] != record[2:4] and sha256_hex(path) != record[1]:
                return f"the sha256 of {relative} changed"
    missing = sorted(set(recorded) - seen)
    return f"{missing[0]} is missing" if missing else None


def _write_json(path: Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def _make_writable(tree: Path) -> None:
    for base, dirs, names in os.walk(tree):
        os.chmod(base, 0o755)
        for file_name in names:
            path = Path(base) / file_name
            if not path.is_symlink():
                os.chmod(path, 0o644)


def _remove_tree(tree: Path) -> None:
    if tree.exists():
        try:
            _make_writable(tree)
        except OSError:
            pass
        shutil.rmtree(tree, ignore_errors=True)
