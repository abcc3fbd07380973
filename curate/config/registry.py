"""Stage lookup: registered names through the entry-point group `curate.stages`, or `module:attr` paths.

The built-in stages in `filters/` register through the same group a third-party package uses, so the API for
custom stages is the one the project itself lives on.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

from curate.errors import ConfigError
from curate.stage import Stage

GROUP = "curate.stages"


@lru_cache(maxsize=1)
def registered() -> dict[str, EntryPoint]:
    """Every stage name registered in the environment, from all installed distributions."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    return sorted(registered())


def load(uses: str) -> type[Stage]:
    """Resolve a `uses:` value to a stage class. Raises ConfigError with a did-you-mean on unknown names."""
    if ":" in uses:
        return _load_path(uses)
    ep = registered().get(uses)
    if ep is None:
        near = difflib.get_close_matches(uses, names(), n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else "run `curate stages` for the list of stages"
        raise ConfigError(f"unknown stage '{uses}'", hint=hint)
    try:
        cls = ep.load()
    except ImportError as e:
        raise ConfigError(f"stage '{uses}' could not be imported: {e}", hint="is its package fully installed?") from e
    return _checked(cls, uses)


def _load_path(uses: str) -> type[Stage]:
    module_name, _, attr = uses.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"'{uses}' is not a valid stage path", hint="write it as module:attribute")
    # A user's module next to their pipeline: importable from the working directory, as `python -m` would.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError(
                f"module '{module_name}' not found (stage '{uses}')",
                hint="run from the directory that holds it, or put that directory on PYTHONPATH",
            ) from e
        raise ConfigError(f"importing '{module_name}' failed: {e}") from e
    except Exception as e:
        raise ConfigError(f"importing '{module_name}' failed: {type(e).__name__}: {e}") from e
    obj = getattr(module, attr, None)
    if obj is None:
        near = difflib.get_close_matches(attr, [a for a in dir(module) if not a.startswith("_")], n=1)
        hint = f"did you mean '{module_name}:{near[0]}'?" if near else None
        raise ConfigError(f"module '{module_name}' has no attribute '{attr}'", hint=hint)
    _ship_by_value(module)
    return _checked(obj, uses)


# User modules loaded by path (not installed): the Ray runner pickles them by value, so workers (on this machine
# or on a cluster) need not find them on disk.
user_modules: dict[str, ModuleType] = {}


def _ship_by_value(module: ModuleType) -> None:
    path = getattr(module, "__file__", None)
    if path and "site-packages" not in Path(path).parts:
        user_modules[module.__name__] = module


def _checked(obj: object, uses: str) -> type[Stage]:
    if not (isinstance(obj, type) and issubclass(obj, Stage)):
        raise ConfigError(
            f"'{uses}' is not a stage (got {type(obj).__name__})",
            hint="decorate the function with @curate.filter or @curate.mapper, or subclass curate.Filter",
        )
    if not obj.name:
        obj.name = uses
    return obj


READER_GROUP = "curate.readers"


@lru_cache(maxsize=1)
def readers() -> dict[str, EntryPoint]:
    """Input formats registered in the environment (`input.format` values)."""
    return {ep.name: ep for ep in entry_points(group=READER_GROUP)}


def load_reader(fmt: str) -> type:
    from curate.io.base import Reader

    ep = readers().get(fmt)
    if ep is None:
        known = sorted(readers())
        near = difflib.get_close_matches(fmt, known, n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else f"known formats: {', '.join(known)}"
        raise ConfigError(f"unknown input format '{fmt}'", hint=hint)
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Reader)):
        raise ConfigError(f"input format '{fmt}' is registered to {cls!r}, which is not a curate Reader")
    return cls
