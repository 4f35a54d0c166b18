"""Start-up trimming for the CLI: work typer would otherwise do on every call for nothing.

- typer builds every command (signature inspection, click parameters) before it parses the arguments;
  when the first argument names a command, only that one is built.
- typer's rich help imports `rich.markdown` (markdown-it, pygments) and `rich.traceback` (attrs) although
  mhsft's help uses neither markdown nor rich tracebacks: when typer reaches for its rich helpers (help or
  a usage error), those two modules are stood in for by placeholders that import the real module on first use.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Sequence
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


def _deferred(name: str, attr: str) -> types.ModuleType:
    """A stand-in for module `name` that imports the real module as soon as anything in it is used."""
    module = types.ModuleType(name)

    def real() -> types.ModuleType:
        if sys.modules.get(name) is module:
            del sys.modules[name]
        return importlib.import_module(name)

    class Deferred:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return getattr(real(), attr)(*args, **kwargs)

    def __getattr__(item: str) -> Any:
        if item.startswith("__"):  # the import system probing (__path__, __spec__ ...): not a use
            raise AttributeError(item)
        return getattr(real(), item)

    Deferred.__name__ = Deferred.__qualname__ = attr
    setattr(module, attr, Deferred)
    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


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
