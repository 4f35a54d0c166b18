"""Start-up trimming for the CLI: work typer would otherwise do on every call for nothing.

- typer builds every command (signature inspection, click parameters) before it parses the arguments;
  when the first argument names a command, only that one is built.
- typer imports `subprocess` (~5 ms with its own imports) for shell-completion install and `typer.launch`
  only: while typer is imported it is a placeholder that imports the real module on first use.
- typer's rich help imports `rich.markdown` (markdown-it, pygments) and `rich.traceback` (attrs) although
  mhsft's help uses neither markdown nor rich tracebacks: when typer reaches for its rich helpers (help or
  a usage error), those two modules are stood in for by placeholders that import the real module on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}  # module -> the one name typer imports


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
def deferred_imports(*names: str) -> Iterator[None]:
    """Within the block `import NAME` binds a placeholder (see `_deferred`); after it, imports get the real module."""
    placed = {name: _deferred(name) for name in names if name not in sys.modules}
    sys.modules.update(placed)
    try:
        yield
    finally:
        for name, module in placed.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


class _RichHelpFinder:
    """A meta path finder (importlib.abc costs 3 ms to import) that installs the placeholders the moment
    `typer.rich_utils` is imported, and never again."""

    armed = True

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if self.armed and fullname == "typer.rich_utils":
            self.armed = False
            for name, attr in DEFERRED.items():
                if name not in sys.modules:
                    sys.modules[name] = _deferred(name, attr)
        return None  # the real import goes on as usual


def defer_unused_rich_modules() -> None:
    """Arm the placeholders for typer's rich help (see the module docstring)."""
    sys.meta_path.insert(0, _RichHelpFinder())
