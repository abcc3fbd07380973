"""Check YAML values against dataclass field annotations, with messages a user can act on."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, Union


class TypeMismatch(Exception):
    """`value` does not fit the annotation; the message says what was expected and what came."""


def type_name(annotation: Any) -> str:
    if annotation is Any:
        return "any value"
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"a list of {type_name(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of {type_name(args[1])}" if len(args) == 2 else "a mapping"
    if annotation is Path:
        return "a path"
    return getattr(annotation, "__name__", str(annotation))


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def coerce(value: Any, annotation: Any) -> Any:
    """Return `value` checked (and widened, int -> float) against `annotation`, or raise TypeMismatch."""
    if annotation is Any or annotation is object:
        return value
    if isinstance(annotation, str):  # unresolved forward reference: accept as is
        return value
    if annotation is type(None):
        if value is None:
            return None
        raise TypeMismatch(f"expected null, got {_describe(value)}")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except TypeMismatch as e:
                errors.append(str(e))
        raise TypeMismatch(f"expected {type_name(annotation)}, got {_describe(value)}")
    if origin is Literal:
        if value in args:
            return value
        raise TypeMismatch(f"expected {type_name(annotation)}, got {_describe(value)}")
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        if isinstance(value, str) and args and _accepts_str(args[0]):
            value = [value]  # `languages: en` means [en]
        if not isinstance(value, (list, tuple)):
            raise TypeMismatch(f"expected {type_name(annotation)}, got {_describe(value)}")
        inner = args[0] if args else Any
        items = []
        for i, item in enumerate(value):
            try:
                items.append(coerce(item, inner))
            except TypeMismatch as e:
                raise TypeMismatch(f"item {i}: {e}") from None
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise TypeMismatch(f"expected {type_name(annotation)}, got {_describe(value)}")
        if len(args) == 2:
            out = {}
            for k, v in value.items():
                try:
                    out[coerce(k, args[0])] = coerce(v, args[1])
                except TypeMismatch as e:
                    raise TypeMismatch(f"key {k!r}: {e}") from None
            return out
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise TypeMismatch(f"expected true or false, got {_describe(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeMismatch(f"expected an integer, got {_describe(value)}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeMismatch(f"expected a number, got {_describe(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise TypeMismatch(f"expected a string, got {_describe(value)}")
    if annotation is Path:
        if isinstance(value, str):
            return value
        raise TypeMismatch(f"expected a path, got {_describe(value)}")
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise TypeMismatch(f"expected {type_name(annotation)}, got {_describe(value)}")
    return value


def _accepts_str(annotation: Any) -> bool:
    try:
        coerce("x", annotation)
        return True
    except TypeMismatch:
        return False
