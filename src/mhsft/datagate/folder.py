"""A folder given as a dataset: the files ms-swift reads from it, or a refusal before swift starts.

ms-swift 4.6 hands a local folder to `datasets.load_dataset(folder, split="train")` (verified on datasets 4.8):
datasets picks one reader by the most common file extension and reads only the files of that format; files
named for another split (`test.jsonl`, `val/`, `dev-*.jsonl`) are that split's and are not trained on; hidden
files, `__*` folders and README.md are skipped; a folder with no data file fails with a traceback. So a folder
is accepted when swift trains on every data file in it, each of which the gate can then check; otherwise it is
refused here, naming the files swift would skip, with the fix. The answer comes from datasets' own resolution
(imported only when a folder is given), not from a copy of its rules.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mhsft.errors import MhsftError
from mhsft.paths import display
from mhsft.recipe.argv import local_paths

READERS = ("json", "parquet", "csv", "arrow", "text")  # what swift also reads a single file of that suffix with
SPLIT_KEYS = {"train": "dataset", "val": "val_dataset"}  # the [sft] key of a dataset entry of each split
SHOWN = 3  # files named in a refusal
FIX = (
    "List the files to train on in [sft] {key} instead, e.g. {key} = [{example}], or move the other files out of "
    "the folder."
)


def _refuse(key: str, folder: str, problem: str, example: list[str]) -> MhsftError:
    files = ", ".join(f'"{display(f)}"' for f in example[:2]) or f'"{display(folder)}/train.jsonl"'
    return MhsftError(f"[sft] {key} {display(folder)} is a folder {problem}. " + FIX.format(key=key, example=files))


def _empty(key: str, folder: str, held: list[str]) -> MhsftError:
    what = (
        f"a folder that holds no data file ms-swift reads (only {_named(held, folder)})" if held else "an empty folder"
    )
    return MhsftError(
        f"[sft] {key} {display(folder)} is {what}, so ms-swift would fail on it. Put the .jsonl "
        f"files to train on in it (one row a line), or set [sft] {key} to the data file itself."
    )


def _named(files: list[str], folder: str) -> str:
    """Up to SHOWN of `files`, relative to `folder`."""
    rel = [os.path.relpath(f, Path(folder).resolve()) for f in files]
    return ", ".join(rel[:SHOWN]) + (f" and {len(rel) - SHOWN} more" if len(rel) > SHOWN else "")


def read_files(folder: str, key: str = "dataset") -> list[str]:
    """The files swift trains on from `folder` (sorted, absolute), when that is every data file in it."""
    from datasets.data_files import resolve_pattern
    from datasets.exceptions import DataFilesNotFoundError
    from datasets.load import LocalDatasetModuleFactory

    logging.getLogger("huggingface_hub.repocard").setLevel(logging.ERROR)  # "Repo card metadata block was not found"
    base = str(Path(folder).resolve())
    try:
        held = sorted(resolve_pattern("**", base))  # every file datasets looks at (hidden ones, README.md aside)
    except FileNotFoundError:
        held = []
    try:
        module = LocalDatasetModuleFactory(base).get_module()
    except (FileNotFoundError, DataFilesNotFoundError):  # EmptyDatasetError is a FileNotFoundError
        raise _empty(key, folder, held) from None
    except Exception as exc:  # the splits' files differ in format (ValueError), a README.md it cannot parse, ...
        said = " ".join(str(exc).split())  # a YAML error spans lines: one paragraph
        raise _refuse(key, folder, f"ms-swift cannot read ({type(exc).__name__}: {said[:300]})", held) from None
    parameters = module.builder_configs_parameters
    if parameters.metadata_configs:
        raise _refuse(key, folder, "whose README.md declares its own configs (ms-swift reads one of them)", held)
    reader = module.module_path.rsplit(".", 1)[-1]
    splits = {str(split): list(files) for split, files in parameters.builder_configs[0].data_files.items()}
    read = sorted(splits.get("train", []))
    if reader not in READERS:
        raise _refuse(key, folder, f"of {reader} files, which ms-swift does not train a language model on", [])
    skipped = [f for f in held if f not in read]
    if skipped:
        other = [f for f in skipped if any(f in files for split, files in splits.items() if split != "train")]
        rest = [f for f in skipped if f not in other]
        unnamed = [f for f in rest if Path(f).suffix in {Path(r).suffix for r in read}]
        foreign = [f for f in rest if f not in unnamed]
        why = [
            f"named as another split ({_named(other, folder)}: datasets reads files named test, validation, dev or "
            "eval as those splits, and swift trains on the train split only)"
            if other
            else "",
            f"not named for a split ({_named(unnamed, folder)}) beside {_named(read, folder)}, which is: once a "
            "file is named train, test, validation, dev or eval, datasets reads only the files so named"
            if unnamed
            else "",
            f"in another format than its {reader} files ({_named(foreign, folder)}), which ms-swift skips"
            if foreign
            else "",
        ]
        raise _refuse(key, folder, "with files ms-swift would not train on: " + "; ".join(w for w in why if w), read)
    return read


def check_folders(sft: dict[str, Any], cwd: Path) -> None:
    """Refuse a dataset folder in [sft] dataset/val_dataset that swift would not train on whole."""
    for key in SPLIT_KEYS.values():
        for path in local_paths(key, sft.get(key), cwd):
            if os.path.isdir(path):
                read_files(path, key)
