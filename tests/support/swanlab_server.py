"""A stand-in for the SwanLab cloud on 127.0.0.1, speaking the endpoints mhsft's preflight uses.

It follows swanlab 0.10.3's protocol (see ../shared/design.md): `GET /api` answers OK, `POST /api/login/api_key`
takes the raw key in `authorization`, `GET /api/group/{ws}` and `GET /api/project/{ws}/{proj}` answer 200 or 404.
`behaviour` switches it to answer 500 to everything or hang for `delay` seconds, or to stall only after a good
login: `stall_lookup` hangs the workspace/project lookups, `trickle_login` sends the login answer one byte
every 0.2 s, `huge_login` announces a 1 GiB login answer and streams it slowly. `uploads` answers what the SDK's
sync (and a cloud run) sends, and keeps it (see swanlab_upload.py).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from support.loopback import LoopbackServer
from support.swanlab_upload import Uploads


@dataclass
class SwanLabCloud(LoopbackServer):
    keys: dict[str, str] = field(default_factory=lambda: {"good-key-0123456789": "alice"})
    workspaces: set[str] = field(default_factory=lambda: {"alice", "team"})
    projects: set[str] = field(default_factory=lambda: {"alice/existing"})
    behaviour: str = "ok"  # ok | 500 | hang | stall_lookup | trickle_login | huge_login
    delay: float = 30.0
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    uploads: Uploads = field(default_factory=Uploads)

    def start(self) -> SwanLabCloud:
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: object) -> None:
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, raw: bytes, huge: bool) -> None:
                """A 200 answer sent slowly: byte by byte, or (huge) 1 GiB announced and sent in small chunks."""
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(2**30 if huge else len(raw)))
                self.end_headers()
                deadline = time.monotonic() + cloud.delay
                chunks = iter(lambda: b" " * 65536, None) if huge else (raw[i : i + 1] for i in range(len(raw)))
                try:
                    for chunk in chunks:
                        if time.monotonic() > deadline:
                            return
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        time.sleep(0.01 if huge else 0.2)
                except OSError:
                    return

            def _session_user(self) -> str | None:
                """The user of the `sid` cookie the login answer gave (what the SDK sends after logging in)."""
                cookies = dict(c.strip().partition("=")[::2] for c in self.headers.get("cookie", "").split(";"))
                user = cookies.get("sid", "").removeprefix("sid-")
                return user if user in cloud.keys.values() else None

            def _handle(self) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (stall modes)
                    self._answer()

            def _answer(self) -> None:
                cloud.requests.append((self.command, self.path, dict(self.headers)))
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if cloud.behaviour == "hang":
                    time.sleep(cloud.delay)
                if cloud.behaviour == "500":
                    return self._send(500, {"code": "Internal", "message": "boom"})
                path = self.path.split("?")[0].rstrip("/")
                user = cloud.keys.get(self.headers.get("authorization", ""))
                if self.command == "GET" and path == "/api":
                    return self._send(200, "OK")
                if self.command == "POST" and path == "/api/login/api_key":
                    if user is None:
                        return self._send(401, {"code": "Unauthorized", "message": "api key invalid"})
                    answer = {
                        "sid": f"sid-{user}",
                        "expiredAt": "2099-01-01T00:00:00.000Z",
                        "userInfo": {"username": user, "name": user.title()},
                    }
                    if cloud.behaviour in ("trickle_login", "huge_login"):
                        return self._stream(json.dumps(answer).encode(), cloud.behaviour == "huge_login")
                    return self._send(200, answer)
                if cloud.behaviour == "stall_lookup":
                    time.sleep(cloud.delay)
                if (user := user or self._session_user()) is not None:
                    answer = cloud.uploads.route(self.command, path, json.loads(raw) if raw else None)
                    if answer is not None:
                        return self._send(*answer)
                parts = path.split("/")
                if self.command == "GET" and path.startswith("/api/group/"):
                    ws = parts[3]
                    if ws in cloud.workspaces:
                        return self._send(200, {"username": ws, "name": ws, "type": "PERSON", "role": "OWNER"})
                    return self._send(404, {"code": "NotFound", "message": "workspace not found"})
                if self.command == "GET" and path.startswith("/api/project/"):
                    if "/".join(parts[3:5]) in cloud.projects:
                        return self._send(200, {"cuid": "p1", "name": parts[4], "path": "/".join(parts[3:5])})
                    return self._send(404, {"code": "NotFound", "message": "project not found"})
                return self._send(404, {"code": "NotFound", "message": self.path})

            do_GET = do_POST = do_PUT = do_PATCH = _handle

        self.serve(Handler)
        return self
