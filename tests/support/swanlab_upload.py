"""The upload half of the SwanLab stand-in: the endpoints swanlab 0.10.3's `sync` (and a cloud run) calls.

Read from `swanlab/sdk/internal/core_python/api/` and checked against the real `swanlab.sdk.sync`: the project
lookup and creation (`GET /api/project/{ws}/{p}`, `POST /api/projects/{ws}`), the experiment's create-or-resume
(`POST /api/project/{ws}/{p}/experiment`: 201 new, 200 existing, keyed by `cuid`, the run id) and lookup
(`GET .../runs/{id}`), the summary a resume reads to skip what the server holds
(`GET /api/house/metrics/summaries/{project}/{experiment}`: the highest step of each key and the last log line),
the columns, the metrics (`POST /api/house/metrics`), the profile and the final state. Everything received is
kept, in order, so that a test can compare it with what the run logged and see any step sent twice.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

Answer = tuple[int, Any]


@dataclass
class Experiment:
    """One experiment as the stand-in holds it."""

    cuid: str
    name: str
    project: str
    created_at: str
    state: str = "RUNNING"
    profile: dict[str, Any] = field(default_factory=dict)
    columns: list[dict[str, Any]] = field(default_factory=list)
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # every (step, value) received
    logs: list[int] = field(default_factory=list)  # the epochs (line numbers) of the console lines received
    arrivals: list[tuple[str, int, str, float]] = field(default_factory=list)  # key, step, create_time, received

    def summary(self) -> dict[str, Any]:
        scalar = [{"key": k, "step": max(s for s, _ in v)} for k, v in self.scalars.items() if v]
        return {"scalar": scalar, "media": [], "log": [{"step": max(self.logs)}] if self.logs else []}


@dataclass
class Uploads:
    """Projects and experiments created through the API, and what was uploaded into them."""

    projects: dict[str, str] = field(default_factory=dict)  # "ws/name" -> project cuid
    experiments: dict[str, Experiment] = field(default_factory=dict)  # cuid -> experiment
    cut_scalars: bool = False  # keep the first half of the next scalar upload and never answer it (a cut link)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def route(self, command: str, path: str, body: Any) -> Answer | None:
        """The answer for an upload endpoint, or None when `path` is not one."""
        with self.lock:
            answer = self._route(command, path.split("/"), body)
        if answer is not None and answer[0] == -1:  # hang (outside the lock) until the test releases it
            self.release.wait(600)
            return 503, {"code": "Unavailable", "message": "cut"}
        return answer

    def project(self, key: str) -> dict[str, Any]:
        count = sum(e.project == key for e in self.experiments.values())
        ws, name = key.split("/")
        return {
            "cuid": self.projects[key],
            "name": name,
            "path": f"/{key}",
            "group": {"username": ws},
            "_count": {"experiments": count},
        }

    def _route(self, command: str, p: list[str], body: Any) -> Answer | None:
        if command == "POST" and p[1:3] == ["api", "projects"] and len(p) == 4:
            key = f"{p[3]}/{body['name']}"
            status = 200 if key in self.projects else 201
            self.projects.setdefault(key, f"proj-{len(self.projects)}")
            return status, {}
        if len(p) >= 5 and p[1:3] == ["api", "project"]:
            key = "/".join(p[3:5])
            if key not in self.projects:
                return None
            if command == "GET" and len(p) == 5:
                return 200, self.project(key)
            if command == "POST" and p[5:] == ["experiment"]:
                return self._create(key, body)
            if p[5:6] == ["runs"] and len(p) >= 7 and p[6] in self.experiments:
                exp = self.experiments[p[6]]
                if command == "GET" and len(p) == 7:
                    return 200, {"cuid": exp.cuid, "name": exp.name, "createdAt": exp.created_at, "state": exp.state}
                if command == "PUT" and p[7:] == ["state"]:
                    exp.state = body["state"]
                    return 200, {}
                if command == "PUT" and p[7:] == ["profile"]:
                    exp.profile |= body
                    return 200, {}
        if command == "POST" and p[1:3] == ["api", "experiment"] and p[4:] == ["columns"]:
            self.experiments[p[3]].columns += body
            return 201, {}
        if command == "GET" and p[1:5] == ["api", "house", "metrics", "summaries"]:
            return 200, self.experiments[p[6]].summary()
        if command == "POST" and p[1:4] == ["api", "house", "metrics"] and len(p) == 4:
            return self._metrics(body)
        return None

    def _create(self, project: str, body: dict[str, Any]) -> Answer:
        cuid = body.get("cuid") or f"exp{len(self.experiments):017d}"
        exp = self.experiments.get(cuid)
        if exp is not None:
            exp.state = "RUNNING"
            return 200, {"cuid": cuid, "slug": cuid, "name": exp.name, "createdAt": exp.created_at}
        self.experiments[cuid] = Experiment(cuid, body["name"], project, body["createdAt"])
        return 201, {"cuid": cuid, "slug": cuid, "name": body["name"]}

    def _metrics(self, body: dict[str, Any]) -> Answer:
        exp, metrics = self.experiments[body["experimentId"]], body["metrics"]
        cut = self.cut_scalars and body["type"] == "scalar"
        for metric in metrics[: len(metrics) // 2] if cut else metrics:
            if body["type"] == "scalar":
                exp.scalars.setdefault(metric["key"], []).append((metric["index"], metric["data"]))
                exp.arrivals.append((metric["key"], metric["index"], metric.get("create_time", ""), time.time()))
            elif body["type"] == "log":
                exp.logs.append(metric["epoch"])
        if cut:
            self.cut_scalars = False
            return -1, None
        return 201, {}
