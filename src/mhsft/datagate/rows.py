"""The kept rows of the gate's export, as compact arrays: `rows.npz` beside the cached dataset.

Per split, each kept row's token count, dialogue fingerprint (0: none) and source dataset (an index into the
split's names, -1: none); and, with packing, the packed sequence lengths. Arrays, not JSON lists, so that the
gate's own memory stays a few bytes a row. numpy is imported here only, when rows are read or written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "rows.npz"
SPLITS = ("train", "val")


@dataclass
class Split:
    """One split's kept rows, in the order swift saved them."""

    lengths: Any  # numpy int64
    sigs: Any  # numpy uint64
    dataset: Any  # numpy int32, into `names`
    names: list[str | None]

    @classmethod
    def of(cls, datasets: list[str | None], lengths: list[int], sigs: list[int]) -> Split:
        """A split from plain lists (one item a row)."""
        import numpy as np

        names = list(dict.fromkeys(datasets))
        index = {name: i for i, name in enumerate(names)}
        return cls(
            np.asarray(lengths, dtype=np.int64).reshape(-1),
            np.asarray(sigs, dtype=np.uint64).reshape(-1),
            np.asarray([index[d] for d in datasets], dtype=np.int32).reshape(-1),
            names,
        )

    def of_source(self, matches: Any) -> Any:
        """A boolean mask of the rows whose dataset name `matches(name)`."""
        import numpy as np

        table = np.asarray([bool(matches(name)) for name in self.names] + [False], dtype=bool)
        return table[self.dataset]  # -1 (no name) picks the final False


def save(path: Path, splits: dict[str, Split | None], packed: list[int] | None) -> None:
    """Write `rows.npz`."""
    import numpy as np

    arrays: dict[str, Any] = {}
    for name, split in splits.items():
        if split is not None:
            arrays |= {f"{name}_lengths": split.lengths, f"{name}_sigs": split.sigs, f"{name}_dataset": split.dataset}
            arrays[f"{name}_names"] = np.asarray(json.dumps(split.names))
    if packed is not None:
        arrays["packed"] = np.asarray(packed, dtype=np.int64)
    with path.open("wb") as f:
        np.savez(f, **arrays)


def load(path: Path) -> dict[str, Any]:
    """`rows.npz` as {"train": Split | None, "val": Split | None, "packed": list[int] | None}."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {}
        for name in SPLITS:
            if f"{name}_lengths" not in data:
                out[name] = None
                continue
            names = json.loads(str(data[f"{name}_names"]))
            out[name] = Split(data[f"{name}_lengths"], data[f"{name}_sigs"], data[f"{name}_dataset"], names)
        out["packed"] = data["packed"].tolist() if "packed" in data else None
    return out


def lengths(cache_dir: Path) -> dict[str, list[int] | None]:
    """The token counts of the kept rows per split, from a cache entry's folder (for the rehearsal)."""
    found = load(Path(cache_dir) / "export" / FILE)
    return {name: None if found[name] is None else found[name].lengths.tolist() for name in SPLITS}
