"""A stand-in for the ModelScope and Hugging Face hubs' login endpoints on 127.0.0.1.

ModelScope (modelscope_hub 0.5, what `HubApi().login(token)` in ms-swift sends): `POST /api/v1/login` with
`{"AccessToken": token}` answers `{"Code": 200, "Data": {"AccessToken", "Username", "Email"}}`, then
`GET /openapi/v1/users/me` (Bearer token) the profile. Hugging Face: `GET /api/whoami-v2` (Bearer token).
An unknown token gets a 401. `behaviour = "hang"` makes every request wait `delay` seconds. A token in
`read_only` is refused by the ModelScope login (which mints git credentials) but accepted by `users/me`, and has
the role "read" in Hugging Face's whoami (`auth.accessToken.role`, with `orgs`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from support.loopback import LoopbackServer


@dataclass
class HubStandIn(LoopbackServer):
    tokens: dict[str, str] = field(default_factory=lambda: {"ms-good-token-0123456789": "alice"})
    behaviour: str = "ok"  # ok | hang
    delay: float = 30.0
    requests: list[tuple[str, str]] = field(default_factory=list)
    read_only: set[str] = field(default_factory=set)
    orgs: list[str] = field(default_factory=list)

    def start(self) -> HubStandIn:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self) -> None:
                hub.requests.append((self.command, self.path))
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

            do_GET = do_POST = _handle

        self.serve(Handler)
        return self
