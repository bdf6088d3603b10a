"""A fake Hugging Face Hub at the HTTP transport seam of ``huggingface_hub`` 2.x.

``huggingface_hub`` 2.x does its HTTP with ``httpx2`` (a separate package, not ``httpx``), so
respx, which patches httpx/httpcore, never sees its requests. The library's own seam is
``huggingface_hub.set_client_factory``: :meth:`FakeHub.installed` plugs in an ``httpx2.Client``
whose transport is an ``httpx2.MockTransport`` routed here. It answers the real client code
(``HfApi.upload_file``, ``get_hf_file_metadata``, ``hf_hub_download``) for one model repo:

* ``POST /api/models/{repo}/preupload/{rev}`` → every file is ``lfs`` (as the Hub does for *.zip);
* ``POST /{repo}.git/info/lfs/objects/batch`` → a basic-transfer upload (+ verify) action, or no
  action when the blob is already stored;
* ``PUT /fake-lfs/{oid}`` (rejects bytes whose sha256 is not ``oid``), ``POST /fake-lfs/{oid}/verify``;
* ``POST /api/models/{repo}/commit/{rev}`` (NDJSON) → a new commit on the branch;
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``X-Linked-Etag`` (the
  sha256) and ``X-Linked-Size``; 404 with ``X-Error-Code: EntryNotFound``/``RevisionNotFound``.

Not covered: the Xet transfer (hf_xet is native code with its own HTTP stack), so tests turn
Xet off (``huggingface_hub.constants.HF_HUB_DISABLE_XET``) and the client takes the LFS path.
``tamper(commit, path, data)`` makes downloads of one file serve other bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx2
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook


@dataclass
class FakeHub:
    endpoint: str = "https://hub.fake"
    repo_id: str = "gas-org/detectors"
    blobs: dict[str, bytes] = field(default_factory=dict)  # sha256 → bytes (LFS storage)
    commits: dict[str, dict[str, str]] = field(default_factory=dict)  # commit → {path: sha256}
    branches: dict[str, str] = field(default_factory=dict)
    commit_messages: dict[str, str] = field(default_factory=dict)
    tampered: dict[tuple[str, str], bytes] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    auth: list[str | None] = field(default_factory=list)
    fail_commits: int | None = None  # respond to commits with this status
    repo_type: str = "model"  # "model" or "dataset": which URL prefixes the routes answer
    page_size: int = 1000  # tree entries per page (the Hub's cap is 1000)

    def __post_init__(self) -> None:
        root = hashlib.sha1(b"initial").hexdigest()
        self.commits[root] = {}
        self.branches["main"] = root

    # -- helpers for tests ------------------------------------------------------------------
    def tamper(self, commit: str, path: str, data: bytes) -> None:
        self.tampered[(commit, path)] = data

    def head(self, branch: str = "main") -> str:
        return self.branches[branch]

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p in self.calls if m == method and fragment in p)

    def add_files(self, files: dict[str, bytes], branch: str = "main", message: str = "add files") -> str:
        """Commit ``files`` on ``branch`` directly (no upload protocol); returns the new commit."""
        parent = self.branches[branch]
        tree = dict(self.commits[parent])
        for path, data in files.items():
            oid = hashlib.sha256(data).hexdigest()
            self.blobs[oid] = data
            tree[path] = oid
        commit = hashlib.sha1(f"{parent}{sorted(tree.items())}".encode()).hexdigest()
        self.commits[commit] = tree
        self.branches[branch] = commit
        self.commit_messages[commit] = message
        return commit

    # -- routing -----------------------------------------------------------------------------
    @contextmanager
    def installed(self) -> Iterator[FakeHub]:
        """Route every ``huggingface_hub`` request here for the duration (unrouted → AssertionError)."""
        ep, repo = re.escape(self.endpoint), re.escape(self.repo_id)
        kind = {"model": "models", "dataset": "datasets"}[self.repo_type]
        url_repo = repo if self.repo_type == "model" else f"{kind}/{repo}"
        self._routes = [
            ("POST", re.compile(rf"^{ep}/api/{kind}/{repo}/preupload/(?P<rev>[^?]+)$"), self._preupload),
            ("POST", re.compile(rf"^{ep}/{url_repo}\.git/info/lfs/objects/batch$"), self._batch),
            ("PUT", re.compile(rf"^{ep}/fake-lfs/(?P<oid>[0-9a-f]{{64}})$"), self._lfs_put),
            ("POST", re.compile(rf"^{ep}/fake-lfs/(?P<oid>[0-9a-f]{{64}})/verify$"), self._lfs_verify),
            ("POST", re.compile(rf"^{ep}/api/{kind}/{repo}/commit/(?P<rev>[^?]+)$"), self._commit),
            ("HEAD", re.compile(rf"^{ep}/{url_repo}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), self._resolve),
            ("GET", re.compile(rf"^{ep}/{url_repo}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), self._resolve),
            ("GET", re.compile(rf"^{ep}/api/{kind}/{repo}(?:/revision/(?P<rev>[^/]+))?$"), self._info),
            ("GET", re.compile(rf"^{ep}/api/{kind}/{repo}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$"), self._tree_list),
            ("GET", re.compile(rf"^{ep}/api/{kind}/(?!{repo}(?:/|$))[^/]+/[^/]+(?:/.*)?$"), self._repo_not_found),
        ]

        def factory() -> httpx2.Client:
            return httpx2.Client(
                transport=httpx2.MockTransport(self._handle),
                event_hooks={"request": [hf_request_event_hook]},
                follow_redirects=True,
                timeout=None,
            )

        set_client_factory(factory)
        try:
            yield self
        finally:
            set_client_factory(default_client_factory)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url).split("?", 1)[0]
        for method, pattern, fn in self._routes:
            m = pattern.match(url)
            if m and request.method == method:
                return fn(request, **m.groupdict())
        self._record(request)
        raise AssertionError(f"fake hub: unrouted request {request.method} {request.url}")

    def _record(self, request: httpx2.Request) -> None:
        self.calls.append((request.method, request.url.path))
        self.auth.append(request.headers.get("authorization"))

    def _tree(self, rev: str) -> tuple[str, dict[str, str]] | None:
        commit = self.branches.get(rev, rev)
        tree = self.commits.get(commit)
        return None if tree is None else (commit, tree)

    def _info(self, request: httpx2.Request, rev: str | None = None) -> httpx2.Response:
        self._record(request)
        found = self._tree(unquote(rev or "main"))
        if found is None:
            return httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, json={"error": "no revision"})
        return httpx2.Response(200, json={"id": self.repo_id, "sha": found[0], "private": False})

    def _tree_list(self, request: httpx2.Request, rev: str, path: str | None = None) -> httpx2.Response:
        self._record(request)
        found = self._tree(unquote(rev))
        if found is None:
            return httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, json={"error": "no revision"})
        _, tree = found
        prefix = unquote(path).rstrip("/") + "/" if path else ""
        recursive = request.url.params.get("recursive", "false").lower() == "true"
        entries: list[dict] = []
        dirs: set[str] = set()
        for p in sorted(tree):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix) :]
            parts = rest.split("/")
            for k in range(1, len(parts) if recursive else min(2, len(parts))):
                d = prefix + "/".join(parts[:k])
                if d not in dirs:
                    dirs.add(d)
                    entries.append({"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0})
            if recursive or len(parts) == 1:
                oid, size = tree[p], len(self.blobs[tree[p]])
                entries.append(
                    {
                        "type": "file",
                        "path": p,
                        "size": size,
                        "oid": hashlib.sha1(oid.encode()).hexdigest(),
                        "lfs": {"oid": oid, "size": size, "pointerSize": 134},
                    }
                )
        start = int(request.url.params.get("cursor", "0"))
        page = entries[start : start + self.page_size]
        headers = {}
        if start + self.page_size < len(entries):
            nxt = request.url.copy_set_param("cursor", str(start + self.page_size))
            headers["Link"] = f'<{nxt}>; rel="next"'
        return httpx2.Response(200, headers=headers, json=page)

    def _repo_not_found(self, request: httpx2.Request) -> httpx2.Response:
        self._record(request)
        return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, json={"error": "Repository not found"})

    def _preupload(self, request: httpx2.Request, rev: str) -> httpx2.Response:
        self._record(request)
        found = self._tree(rev)
        tree = found[1] if found else {}
        files = json.loads(request.content)["files"]
        return httpx2.Response(
            200,
            json={
                "files": [
                    {
                        "path": f["path"],
                        "uploadMode": "lfs",
                        "shouldIgnore": False,
                        "oid": tree.get(f["path"]),
                    }
                    for f in files
                ]
            },
        )

    def _batch(self, request: httpx2.Request) -> httpx2.Response:
        self._record(request)
        body = json.loads(request.content)
        assert body["operation"] == "upload" and body["hash_algo"] == "sha256"
        objects = []
        for obj in body["objects"]:
            out = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.blobs:
                out["actions"] = {
                    "upload": {"href": f"{self.endpoint}/fake-lfs/{obj['oid']}"},
                    "verify": {"href": f"{self.endpoint}/fake-lfs/{obj['oid']}/verify"},
                }
            objects.append(out)
        return httpx2.Response(200, json={"transfer": "basic", "objects": objects})

    def _lfs_put(self, request: httpx2.Request, oid: str) -> httpx2.Response:
        self._record(request)
        data = request.read()
        if hashlib.sha256(data).hexdigest() != oid:
            return httpx2.Response(400, text="sha256 mismatch")
        self.blobs[oid] = data
        return httpx2.Response(200)

    def _lfs_verify(self, request: httpx2.Request, oid: str) -> httpx2.Response:
        self._record(request)
        body = json.loads(request.content)
        ok = oid in self.blobs and len(self.blobs[oid]) == body["size"]
        return httpx2.Response(200 if ok else 404, json={})

    def _commit(self, request: httpx2.Request, rev: str) -> httpx2.Response:
        self._record(request)
        if self.fail_commits is not None:
            return httpx2.Response(self.fail_commits, json={"error": "forbidden"})
        lines = [json.loads(line) for line in request.content.splitlines() if line.strip()]
        header = lines[0]
        assert header["key"] == "header"
        parent = self.branches[rev]
        tree = dict(self.commits[parent])
        for item in lines[1:]:
            assert item["key"] == "lfsFile", item  # zips always go through LFS here
            value = item["value"]
            if value["oid"] not in self.blobs:
                return httpx2.Response(422, json={"error": f"LFS object {value['oid']} was not uploaded"})
            tree[value["path"]] = value["oid"]
        commit = hashlib.sha1(f"{parent}{sorted(tree.items())}".encode()).hexdigest()
        self.commits[commit] = tree
        self.branches[rev] = commit
        self.commit_messages[commit] = header["value"]["summary"]
        return httpx2.Response(
            200, json={"commitUrl": f"{self.endpoint}/{self.repo_id}/commit/{commit}", "commitOid": commit}
        )

    def _resolve(self, request: httpx2.Request, rev: str, path: str) -> httpx2.Response:
        self._record(request)
        found = self._tree(unquote(rev))
        if found is None:
            return httpx2.Response(
                404, headers={"X-Error-Code": "RevisionNotFound"}, json={"error": "no revision"}
            )
        commit, tree = found
        path = unquote(path)
        oid = tree.get(path)
        if oid is None:
            return httpx2.Response(
                404,
                headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
                json={"error": "no entry"},
            )
        data = self.tampered.get((commit, path), self.blobs[oid])
        headers = {
            "X-Repo-Commit": commit,
            "X-Linked-Etag": f'"{oid}"',
            "ETag": f'"{oid}"',
            "X-Linked-Size": str(len(data)),
        }
        if request.method == "HEAD":
            return httpx2.Response(200, headers=headers)
        return httpx2.Response(200, headers=headers, content=data)
