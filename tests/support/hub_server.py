"""A stand-in for the ModelScope and Hugging Face hubs on 127.0.0.1: their login endpoints, and the downloads.

ModelScope (modelscope_hub 0.5, what `HubApi().login(token)` in ms-swift sends): `POST /api/v1/login` with
`{"AccessToken": token}` answers `{"Code": 200, "Data": {"AccessToken", "Username", "Email"}}`, then
`GET /openapi/v1/users/me` (Bearer token) the profile. Hugging Face: `GET /api/whoami-v2` (Bearer token).
An unknown token gets a 401. `behaviour = "hang"` makes every request wait `delay` seconds. A token in
`read_only` is refused by the ModelScope login (which mints git credentials) but accepted by `users/me`, and has
the role "read" in Hugging Face's whoami (`auth.accessToken.role`, with `orgs`).

Downloads (no token needed) of the folders in `repos` ({repo id: folder}), through the endpoints the real SDKs
call (MODELSCOPE_ENDPOINT / HF_ENDPOINT pointed here). ModelScope (modelscope_hub 0.5): the file list
`GET /api/v1/models/{id}/repo/files` and each file `GET /api/v1/models/{id}/repo?FilePath=...`. Hugging Face
(huggingface_hub 1.x): `GET /api/models/{id}/revision/{rev}`, the tree `GET /api/models/{id}/tree/{rev}`, and
`HEAD`/`GET /{id}/resolve/{rev}/{file}`. Files honour `Range` (the SDKs resume with it). `served` counts the
file bytes sent per `{id}/{file}`; `listed_sizes` ({file: size}) makes the lists announce other sizes;
`hold_after` ({file: n}) sends the first request for that file n bytes, then holds the rest until `release`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from support.loopback import LoopbackServer


@dataclass
class HubStandIn(LoopbackServer):
    tokens: dict[str, str] = field(default_factory=lambda: {"ms-good-token-0123456789": "alice"})
    behaviour: str = "ok"  # ok | hang
    delay: float = 30.0
    requests: list[tuple[str, str]] = field(default_factory=list)
    read_only: set[str] = field(default_factory=set)
    orgs: list[str] = field(default_factory=list)
    repos: dict[str, Path] = field(default_factory=dict)
    served: Counter = field(default_factory=Counter)
    listed_sizes: dict[str, int] = field(default_factory=dict)
    hold_after: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def files(self, repo: str) -> dict[str, bytes]:
        folder = self.repos[repo]
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    def listing(self, repo: str, hf: bool) -> list[dict]:
        out = []
        for name, body in self.files(repo).items():
            size = self.listed_sizes.get(name, len(body))
            if hf:
                out.append({"type": "file", "path": name, "size": size, "oid": hashlib.sha1(body).hexdigest()})
            else:
                sha = hashlib.sha256(body).hexdigest()
                out.append({"Path": name, "Name": name, "Type": "blob", "Size": size, "Sha256": sha})
        return out

    def served_bytes(self) -> int:
        return sum(self.served.values())

    def start(self) -> HubStandIn:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict | list) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _file(self, repo: str, name: str) -> None:
                body = hub.files(repo).get(name)
                if body is None:
                    return self._send(404, {"Code": 404, "Message": "no such file", "error": "Entry not found"})
                start = 0
                match = re.match(r"bytes=(\d+)-", self.headers.get("range") or "")
                if match and int(match.group(1)) < len(body):
                    start = int(match.group(1))
                part = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("content-range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("content-length", str(len(part)))
                self.send_header("x-repo-commit", hub.COMMIT)
                self.send_header("etag", f'"{hashlib.sha1(body).hexdigest()}"')
                self.send_header("accept-ranges", "bytes")
                self.end_headers()
                if self.command != "GET":
                    return
                held = hub.hold_after.pop(name, None)
                if held is not None:  # a connection that stops half way (the client resumes with Range)
                    self.wfile.write(part[:held])
                    self.wfile.flush()
                    hub.served[f"{repo}/{name}"] += held
                    hub.release.wait(60)
                    return
                self.wfile.write(part)
                hub.served[f"{repo}/{name}"] += len(part)

            def _download(self) -> bool:
                """Answer a download endpoint; False when the path is not one."""
                url = urlparse(self.path)
                path, query = unquote(url.path), parse_qs(url.query)
                ms = re.match(r"^/api/v1/models/([^/]+/[^/]+)/repo(/files)?$", path)
                hf = re.match(r"^/api/models/([^/]+/[^/]+)/(revision|tree)/", path)
                resolve = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", path)
                repo = next((m.group(1) for m in (ms, hf, resolve) if m), None)
                if repo is None:
                    return False
                if repo not in hub.repos:
                    self._send(404, {"Code": 10020101, "Message": f"{repo} not found", "error": "Repository not found"})
                elif ms and ms.group(2):
                    self._send(200, {"Code": 200, "Success": True, "Data": {"Files": hub.listing(repo, hf=False)}})
                elif ms:
                    self._file(repo, query.get("FilePath", [""])[0])
                elif hf and hf.group(2) == "tree":
                    self._send(200, hub.listing(repo, hf=True))  # type: ignore[arg-type]
                elif hf:
                    siblings = [{"rfilename": f["path"], "size": f["size"]} for f in hub.listing(repo, hf=True)]
                    self._send(200, {"id": repo, "sha": hub.COMMIT, "siblings": siblings, "private": False})
                else:
                    self._file(repo, resolve.group(2))  # type: ignore[union-attr]
                return True

            def _handle(self) -> None:
                hub.requests.append((self.command, self.path))
                if self._download():
                    return
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                if hub.behaviour == "hang":
                    time.sleep(hub.delay)
                bearer = self.headers.get("authorization", "").removeprefix("Bearer ")
                token = body.get("AccessToken") or bearer
                user = hub.tokens.get(token)
                if user is None:
                    return self._send(401, {"Code": 10010101, "Message": "token is invalid", "error": "Invalid"})
                path = self.path.split("?")[0]
                if path == "/api/v1/login" and token in hub.read_only:
                    return self._send(403, {"Code": 10010403, "Message": "token has no write permission"})
                if path == "/api/v1/login":
                    data = {"AccessToken": "git-token", "Username": user, "Email": f"{user}@example.com"}
                    return self._send(200, {"Code": 200, "Success": True, "Data": data})
                if path in ("/openapi/v1/users/me", "/api/whoami-v2"):
                    role = "read" if token in hub.read_only else "write"
                    orgs = [{"name": o} for o in hub.orgs]
                    auth = {"accessToken": {"displayName": "t", "role": role}}
                    return self._send(200, {"username": user, "name": user, "type": "user", "orgs": orgs, "auth": auth})
                return self._send(404, {"Code": 404, "Message": "not found"})

            do_GET = do_POST = do_HEAD = _handle

        self.serve(Handler)
        return self
