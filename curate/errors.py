"""The error tree. A CurateError is the user's to fix: the CLI prints its message and hint and exits 2."""

from __future__ import annotations

import importlib
from types import ModuleType


class CurateError(Exception):
    """A user-facing error: one clear line, optionally a hint on how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigError(CurateError):
    """A pipeline file (or a --set override) is wrong."""


class InputError(CurateError):
    """Input that cannot be read at all: a missing path, an empty glob, an unreadable file."""


class OutputError(CurateError):
    """The output location cannot be written."""


class MissingDependency(CurateError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, *, what: str = "") -> None:
        need = f" for {what}" if what else ""
        super().__init__(
            f"the package '{package}' is needed{need} but is not installed",
            hint=f"pip install 'curate[{extra}]'",
        )


class StageError(CurateError):
    """A stage broke its contract (wrong row count, undeclared column) or failed in setup()."""


class ConservationError(CurateError):
    """Documents were lost or duplicated: input != kept + rejected. Always a bug, never the user's input."""


def require(module: str, package: str, extra: str, *, what: str, hint: str | None = None) -> ModuleType:
    """Import `module`, or raise MissingDependency naming the distribution to install (`package`), the extra of
    curate that brings it and what needs it; `hint` replaces the default install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        err = MissingDependency(package, extra, what=what)
        if hint is not None:
            err.hint = hint
        raise err from e
