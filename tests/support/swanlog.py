"""Read a finished SwanLab local run back from disk (test helper).

swanlab 0.10.3 writes `<log_dir>/run-<time>-<id>/run-<id>.swanlab`, a record log that
`DataStoreReader` iterates; each record is a `Record` protobuf, scalars under `scalar.key/step/value.number`
(keys such as `train/loss`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _records(log_dir: Path) -> Iterator[tuple[Path, Any]]:
    """(file, record) for every record of every run under `log_dir`, in the order written."""
    from swanlab.proto.swanlab.record.v1.record_pb2 import Record
    from swanlab.sdk.internal.core_python.store import DataStoreReader

    for path in sorted(log_dir.glob("run-*/run-*.swanlab")):
        reader = DataStoreReader()
        reader.open(path)
        for raw in reader:
            record = Record()
            record.ParseFromString(raw)
            yield path, record


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """For every scalar key of every run under `log_dir`, its (step, value) pairs in the order written."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for _, record in _records(log_dir):
        if record.HasField("scalar"):
            scalars.setdefault(record.scalar.key, []).append((record.scalar.step, record.scalar.value.number))
    return scalars


def read_texts(log_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """For every text key of every run under `log_dir`, (run id, content) of each value logged."""
    texts: dict[str, list[tuple[str, str]]] = {}
    for path, record in _records(log_dir):
        if record.HasField("media"):
            for item in record.media.value.items:
                content = (path.parent / "media" / "text" / item.filename).read_text(encoding="utf-8")
                texts.setdefault(record.media.key, []).append((path.stem.removeprefix("run-"), content))
    return texts


def read_starts(log_dir: Path) -> list[dict[str, str]]:
    """Project, experiment name and group of every run under `log_dir` (its `start` record)."""
    return [
        {"project": r.start.project, "name": r.start.name, "group": r.start.group}
        for _, r in _records(log_dir)
        if r.HasField("start")
    ]
