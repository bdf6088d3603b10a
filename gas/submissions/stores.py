"""Model stores: where detector packages live between a miner's push and a validator's fetch.

A store holds opaque package archives (zip bytes), addressed by their sha256. Two backends:

* ``file://DIR`` (:class:`FileStore`, the embedded default): content-addressed files
  ``DIR/sha256/<hex[:2]>/<hex>.zip``; the ref is the package hex digest itself.
* ``hf://org/repo[@revision]`` (:class:`HFStore`): files ``models/<hex>.zip`` in a Hugging Face
  model repo; the ref is the 40-hex commit that added the file, so a ref pins immutable bytes
  even if the branch moves on.

Contract shared by every store:

* refs are lowercase hex strings (so a commitment can pack them as bytes);
* ``put`` verifies ``sha256`` when given, and is idempotent (same bytes → same ref, no rewrite);
* ``get`` reads at most ``max_bytes``, checks the sha256 **before** returning anything and raises
  :class:`HashMismatch` otherwise; it never leaves a partial or unverified file where a later read
  would trust it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gas.storage.files import atomic_write
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FileStore",
    "HFStore",
    "HashMismatch",
    "ModelStore",
    "ObjectNotFound",
    "ObjectTooLarge",
    "StoreError",
    "StoredObject",
    "open_store",
    "sha256_hex",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
# Hub repo ids: "namespace/name", letters, digits, '-', '_', '.' (no '--' / '..' checks needed here:
# the hub rejects those itself, and nothing of it reaches the local file system).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$")
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# errors and values
# --------------------------------------------------------------------------------------------
class StoreError(RuntimeError):
    """A store could not be opened, written or read. Messages are meant for the operator."""


class HashMismatch(StoreError):
    """The bytes a store returned (or were given) do not hash to what was expected."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(f"{what}: sha256 is {actual}, expected {expected}")


class ObjectNotFound(StoreError):
    """No object under that ref."""


class ObjectTooLarge(StoreError):
    def __init__(self, what: str, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"{what} is {size} bytes, more than the {limit} bytes allowed")


@dataclass(frozen=True)
class StoredObject:
    """Where ``put`` left the bytes: ``ref`` (store-specific, lowercase hex), their sha256 and size."""

    ref: str
    sha256: str
    size: int


@runtime_checkable
class ModelStore(Protocol):
    """A place for package archives. See the module docstring for the contract."""

    uri: str

    def put(self, data: bytes, *, sha256: str | None = None) -> StoredObject: ...

    def get(self, ref: str, *, expected_sha256: str, max_bytes: int) -> bytes: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_sha(value: str, what: str = "sha256") -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise StoreError(f"{what} must be 64 lowercase hex characters, got {value!r}")
    return value


def _verified(data: bytes, sha256: str | None, what: str) -> str:
    actual = sha256_hex(data)
    if sha256 is not None and actual != _check_sha(sha256):
        raise HashMismatch(what, sha256, actual)
    return actual


# --------------------------------------------------------------------------------------------
# file://
# --------------------------------------------------------------------------------------------
class FileStore:
    """Content-addressed archives under ``root``: ``root/sha256/<hex[:2]>/<hex>.zip``; ref = hex."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(os.path.expandvars(str(root))).expanduser().absolute()
        self.uri = f"file://{self.root.as_posix()}"

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def path_for(self, sha: str) -> Path:
        _check_sha(sha, "ref")
        return self.root / "sha256" / sha[:2] / f"{sha}.zip"

    def put(self, data: bytes, *, sha256: str | None = None) -> StoredObject:
        digest = _verified(data, sha256, "package bytes to store")
        target = self.path_for(digest)
        if target.is_file() and target.stat().st_size == len(data) and _file_sha(target) == digest:
            return StoredObject(ref=digest, sha256=digest, size=len(data))  # already there: no rewrite
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data)
        except OSError as e:
            raise StoreError(f"cannot write {target}: {e.strerror or e}") from e
        return StoredObject(ref=digest, sha256=digest, size=len(data))

    def get(self, ref: str, *, expected_sha256: str, max_bytes: int) -> bytes:
        if not isinstance(ref, str) or not _HEX64.match(ref):
            raise StoreError(f"file store ref must be 64 lowercase hex characters, got {ref!r}")
        _check_sha(expected_sha256, "expected sha256")
        path = self.path_for(ref)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise ObjectTooLarge(f"object {ref} in {self.uri}", size, max_bytes)
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise ObjectNotFound(f"no object {ref} in {self.uri} (looked for {path})") from None
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror or e}") from e
        if len(data) > max_bytes:  # grew while we read it
            raise ObjectTooLarge(f"object {ref} in {self.uri}", len(data), max_bytes)
        actual = sha256_hex(data)
        if actual != expected_sha256:
            raise HashMismatch(f"object {ref} in {self.uri}", expected_sha256, actual)
        return data


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# hf://
# --------------------------------------------------------------------------------------------
class HFStore:
    """Archives in a Hugging Face model repo, at ``models/<sha256>.zip``; ref = the commit sha.

    ``api`` is a :class:`huggingface_hub.HfApi` (built from ``token``/``HF_TOKEN`` when omitted);
    tests inject one pointed at a fake endpoint. Downloads go to ``cache_dir`` (the hub's cache
    layout) and are verified before they are returned; a blob that fails the check is deleted.
    """

    def __init__(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        revision: str = "main",
        api: Any | None = None,
        cache_dir: Path | str | None = None,
    ) -> None:
        if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
            raise StoreError(f"hf store: {repo_id!r} is not a Hugging Face repo id (expected 'org/name')")
        if not _REVISION.match(revision) or ".." in revision:
            raise StoreError(f"hf store: bad revision {revision!r}")
        self.repo_id = repo_id
        self.revision = revision
        self.uri = f"hf://{repo_id}" + (f"@{revision}" if revision != "main" else "")
        self.token = token if token is not None else (os.environ.get("HF_TOKEN") or None)
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=self.token)
        self.api = api
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None

    def __repr__(self) -> str:
        return f"HFStore({self.uri!r})"

    @staticmethod
    def path_in_repo(sha: str) -> str:
        return f"models/{_check_sha(sha)}.zip"

    def put(self, data: bytes, *, sha256: str | None = None) -> StoredObject:
        digest = _verified(data, sha256, "package bytes to store")
        path = self.path_in_repo(digest)
        existing = self._existing_commit(path, digest)
        if existing is not None:
            return StoredObject(ref=existing, sha256=digest, size=len(data))
        try:
            info = self.api.upload_file(
                path_or_fileobj=data,
                path_in_repo=path,
                repo_id=self.repo_id,
                repo_type="model",
                revision=self.revision,
                commit_message=f"GAS detector package {digest[:12]}",
                token=self.token,
            )
        except Exception as e:  # every hub/transport failure is a store failure
            raise StoreError(f"upload of {path} to {self.uri} failed: {_describe(e)}") from e
        commit = str(getattr(info, "oid", "") or "").lower()
        if not _HEX40.match(commit):
            raise StoreError(f"upload to {self.uri} returned no commit sha (got {commit!r})")
        return StoredObject(ref=commit, sha256=digest, size=len(data))

    def _existing_commit(self, path: str, digest: str) -> str | None:
        """The branch head's commit when it already holds ``path`` with these bytes (skip re-upload)."""
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(self.repo_id, path, revision=self.revision, endpoint=self.api.endpoint)
        try:
            meta = self.api.get_hf_file_metadata(url=url, token=self.token)
        except Exception:  # absent (or unknown): upload, which reports real errors
            return None
        etag = (getattr(meta, "etag", None) or "").strip('"').lower()
        commit = (getattr(meta, "commit_hash", None) or "").lower()
        if etag == digest and _HEX40.match(commit):
            return commit
        return None

    def get(self, ref: str, *, expected_sha256: str, max_bytes: int) -> bytes:
        if not isinstance(ref, str) or not _HEX40.match(ref):
            raise StoreError(f"hf store ref must be a 40-hex commit sha, got {ref!r}")
        from huggingface_hub import hf_hub_url

        path = self.path_in_repo(expected_sha256)
        where = f"{self.uri}@{ref}:{path}"
        url = hf_hub_url(self.repo_id, path, revision=ref, endpoint=self.api.endpoint)
        try:
            meta = self.api.get_hf_file_metadata(url=url, token=self.token)
        except Exception as e:
            raise _not_found_or_error(e, where) from e
        size = getattr(meta, "size", None)
        if size is not None and size > max_bytes:
            raise ObjectTooLarge(where, int(size), max_bytes)
        try:
            local = self.api.hf_hub_download(
                self.repo_id,
                path,
                repo_type="model",
                revision=ref,
                cache_dir=str(self.cache_dir) if self.cache_dir is not None else None,
                token=self.token,
            )
        except Exception as e:
            raise _not_found_or_error(e, where) from e
        local_path = Path(local)
        try:
            with open(local_path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as e:
            raise StoreError(f"cannot read downloaded {where}: {e.strerror or e}") from e
        if len(data) > max_bytes:
            _discard(local_path)
            raise ObjectTooLarge(where, len(data), max_bytes)
        actual = sha256_hex(data)
        if actual != expected_sha256:
            _discard(local_path)  # never let a later read trust this cached blob
            raise HashMismatch(where, expected_sha256, actual)
        return data


def _discard(local_path: Path) -> None:
    """Remove a downloaded file and, when it is a hub-cache symlink, the blob behind it."""
    try:
        blob = local_path.resolve()
        local_path.unlink(missing_ok=True)
        if blob != local_path:
            blob.unlink(missing_ok=True)
    except OSError:
        pass


def _not_found_or_error(e: Exception, where: str) -> StoreError:
    name = type(e).__name__
    if name in (
        "EntryNotFoundError",
        "RemoteEntryNotFoundError",
        "RevisionNotFoundError",
        "RepositoryNotFoundError",
    ):
        return ObjectNotFound(f"{where} not found on the hub ({name})")
    return StoreError(f"download of {where} failed: {_describe(e)}")


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


# --------------------------------------------------------------------------------------------
# by URI
# --------------------------------------------------------------------------------------------
def open_store(uri: str, *, cache_dir: Path | None = None, hf_api: Any | None = None) -> ModelStore:
    """The store a URI names: ``file://DIR`` or ``hf://org/repo[@revision]``.

    ``cache_dir`` is where the HF store keeps downloads (``<cache_dir>/hf``). Raises
    :class:`StoreError` for anything else.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise StoreError("model store URI is empty: use file://DIR or hf://org/repo")
    uri = uri.strip()
    if any(c.isspace() or c == "|" for c in uri):
        raise StoreError(f"model store URI {uri!r} must not contain spaces or '|'")
    if uri.startswith("file://"):
        path = uri[len("file://") :]
        if path.startswith("localhost/"):
            path = path[len("localhost") :]
        if not path:
            raise StoreError(f"model store URI {uri!r} names no directory (file:///abs/dir)")
        return FileStore(path)
    if uri.startswith("hf://"):
        rest = uri[len("hf://") :]
        repo, sep, revision = rest.partition("@")
        return HFStore(
            repo,
            revision=revision if sep else "main",
            api=hf_api,
            cache_dir=(Path(cache_dir) / "hf") if cache_dir is not None else None,
        )
    scheme = uri.split("://", 1)[0] if "://" in uri else uri
    raise StoreError(f"unknown model store {scheme!r} in {uri!r}: use file://DIR or hf://org/repo[@revision]")
