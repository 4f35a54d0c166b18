"""Read a finished SwanLab local run back from disk (test helper).

swanlab 0.10.3 writes `<log_dir>/run-<time>-<id>/run-<id>.swanlab`, a record log that
`DataStoreReader` iterates; each record is a `Record` protobuf, scalars under `scalar.key/step/value.number`
(keys such as `train/loss`).
"""

from __future__ import annotations

from pathlib import Path


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """For every scalar key of every run under `log_dir`, its (step, value) pairs in the order written."""
    from swanlab.proto.swanlab.record.v1.record_pb2 import Record
    from swanlab.sdk.internal.core_python.store import DataStoreReader

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.glob("run-*/run-*.swanlab")):
        reader = DataStoreReader()
        reader.open(path)
        for raw in reader:
            record = Record()
            record.ParseFromString(raw)
            if record.HasField("scalar"):
                scalars.setdefault(record.scalar.key, []).append((record.scalar.step, record.scalar.value.number))
    return scalars


def read_texts(log_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """For every text key of every run under `log_dir`, (run id, content) of each value logged."""
    from swanlab.proto.swanlab.record.v1.record_pb2 import Record
    from swanlab.sdk.internal.core_python.store import DataStoreReader

    texts: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(log_dir.glob("run-*/run-*.swanlab")):
        reader, run_id = DataStoreReader(), path.stem.removeprefix("run-")
        reader.open(path)
        for raw in reader:
            record = Record()
            record.ParseFromString(raw)
            if record.HasField("media"):
                for item in record.media.value.items:
                    content = (path.parent / "media" / "text" / item.filename).read_text(encoding="utf-8")
                    texts.setdefault(record.media.key, []).append((run_id, content))
    return texts


def read_starts(log_dir: Path) -> list[dict[str, str]]:
    """Project, experiment name and group of every run under `log_dir` (its `start` record)."""
    from swanlab.proto.swanlab.record.v1.record_pb2 import Record
    from swanlab.sdk.internal.core_python.store import DataStoreReader

    starts = []
    for path in sorted(log_dir.glob("run-*/run-*.swanlab")):
        reader = DataStoreReader()
        reader.open(path)
        for raw in reader:
            record = Record()
            record.ParseFromString(raw)
            if record.HasField("start"):
                starts.append({"project": record.start.project, "name": record.start.name, "group": record.start.group})
    return starts
