"""Start-up trimming for the CLI: work typer would otherwise do on every call for nothing.

- typer builds every command (signature inspection, click parameters) before it parses the arguments;
  when the first argument names a command, only that one is built.
- typer imports `subprocess` and `shutil` (~8 ms with their own imports) for shell-completion install,
  `typer.launch` and help layout only: while typer is imported they are placeholders that import the real
  module on first use.
- typer's rich help imports `rich.markdown` (markdown-it, pygments) and `rich.traceback`, and rich itself
  `attrs`, although mhsft's help uses neither markdown, rich tracebacks nor attrs classes: while typer
  imports its rich helpers (for help or a usage error) the first two are placeholders that import the real
  module on first use, and attrs is left out.
- Importing typer (and rich for help) allocates enough for ~40 garbage collections that find nothing (10-25 %
  of a short command): collection is paused while typer is imported, and its objects are then frozen out of
  later collections; during the run young objects are collected 10x less often (the run imports the
  command's modules); once typer's rich helpers are imported the process only prints and exits, so
  collection stays off until the run ends.
"""

from __future__ import annotations

import gc
import importlib
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def keep_invoked_command(app: Any, argv: Sequence[str]) -> None:
    """Drop every command and group of a typer `app` but the one `argv` starts with (if it names one)."""
    if not argv:
        return
    commands = [c for c in app.registered_commands if _command_name(c) == argv[0]]
    groups = [g for g in app.registered_groups if g.name == argv[0]]
    if commands or groups:
        app.registered_commands[:] = commands
        app.registered_groups[:] = groups


def _command_name(info: Any) -> str:
    return info.name or info.callback.__name__.lower().replace("_", "-")


def _deferred(name: str, attr: str | None = None) -> types.ModuleType:
    """A stand-in for module `name` that imports the real module as soon as anything in it is used.

    `attr`: a class the importer takes by name (`from name import attr`), stood in for until instantiated.
    """
    module = types.ModuleType(name)

    def real() -> types.ModuleType:
        if sys.modules.get(name) is module:
            del sys.modules[name]
        return importlib.import_module(name)

    def __getattr__(item: str) -> Any:
        if item.startswith("__"):  # the import system probing (__path__, __spec__ ...): not a use
            raise AttributeError(item)
        return getattr(real(), item)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    if attr:

        class Deferred:
            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                return getattr(real(), attr)(*args, **kwargs)

        Deferred.__name__ = Deferred.__qualname__ = attr
        setattr(module, attr, Deferred)
    return module


@contextmanager
def deferred_imports(*names: str, blocked: tuple[str, ...] = ()) -> Iterator[None]:
    """Within the block `import NAME` binds a placeholder (see `_deferred`; `NAME:Class` also stands in for a
    class imported from it) and a `blocked` module raises ImportError (an optional extra its importer does
    without). After the block, imports get the real modules again."""
    placed: dict[str, types.ModuleType | None] = {}
    for entry in names:
        name, _, attr = entry.partition(":")
        placed[name] = _deferred(name, attr or None)
    placed |= dict.fromkeys(blocked)
    placed = {name: module for name, module in placed.items() if name not in sys.modules}
    sys.modules.update(placed)
    try:
        yield
    finally:
        for name, module in placed.items():
            if name in sys.modules and sys.modules[name] is module:
                del sys.modules[name]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection within the block; what it allocated is then left out of later collections."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class _RichHelpFinder:
    """A meta path finder (importlib.abc costs 3 ms to import) that trims the one import of `typer.rich_utils`."""

    armed = True

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if not (self.armed and fullname == "typer.rich_utils"):
            return None
        self.armed = False
        gc.disable()  # help, a usage error or completion: printed, then the process exits
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module = _lighter(spec.loader.exec_module)
        return spec


def _lighter(exec_module: Any) -> Any:
    """`exec_module` of typer.rich_utils, without what mhsft does not use."""

    def run(module: types.ModuleType) -> None:
        # rich.pretty (imported by rich.console) imports attrs only to pretty-print attrs classes
        with deferred_imports("rich.markdown:Markdown", "rich.traceback:Traceback", blocked=("attr",)):
            exec_module(module)

    return run


@contextmanager
def trimmed(app: Any, argv: Sequence[str]) -> Iterator[None]:
    """While the block runs typer `app` with `argv`: only the invoked command is built, and typer's rich
    helpers import without what mhsft does not use. Both are undone afterwards."""
    commands, groups = list(app.registered_commands), list(app.registered_groups)
    collecting, threshold = gc.isenabled(), gc.get_threshold()
    gc.set_threshold(threshold[0] * 10, *threshold[1:])  # what a run allocates is mostly modules, kept anyway
    keep_invoked_command(app, argv)
    finder = _RichHelpFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        app.registered_commands[:], app.registered_groups[:] = commands, groups
        sys.meta_path.remove(finder)
        gc.set_threshold(*threshold)
        if collecting:
            gc.enable()
