"""What the two halves of the static check share: the problems collector and the helpers that
report into it (a mapping expected, parameters against a signature, "did you mean").

:mod:`neuralgraph.checker` (the graph's structure) and :mod:`neuralgraph.trainer_checks` (what
a training run reads beside it) both import this module, and neither imports the other's
helpers, so the two import without a cycle.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neuralgraph.config import LineIndex
from neuralgraph.errors import Location, Problem
from neuralgraph.validators import (
    ParameterError,
    Validator,
    boolean,
    in_,
    instance_of,
    number,
    optional,
)

__all__: list[str] = []  # private to the checker's modules


class _Problems:
    """Collects problems, locating each by its key path in the graph file."""

    def __init__(self, index: LineIndex) -> None:
        self.index = index
        self.items: list[Problem] = []

    def error(self, message: str, *path: str | int, node: str | None = None,
              port: str | None = None, related: Iterable[tuple[str | int, ...]] = (),
              **fields: str | None) -> None:
        """An error at ``path``'s line. Where an override changed a value under ``path`` (or
        at or under a ``related`` path: the params whose sizes an edge compares), the message
        names it: the value that caused the problem may come from the command line."""
        location = self.index.locate(*path)
        note = self._override_note(path, location, related)
        self.items.append(Problem(message + note, location, node, port, "error",
                                  key=_key(path), **fields))

    def _override_note(self, path: tuple[str | int, ...], location: Location,
                       related: Iterable[tuple[str | int, ...]]) -> str:
        found: list[Location] = []
        if len(path) >= 2:  # not "nodes" as a whole: any override would be "under" it
            found += self.index.overrides_under(*path)
        for other in related:
            found += self.index.overrides_under(*other, itself=True)
        shown = [str(where) for where in dict.fromkeys(found) if where != location]
        if not shown:
            return ""
        return (f"; {', '.join(shown[:3])}{' and others' if len(shown) > 3 else ''} "
                f"changed {'a value' if len(shown) == 1 else 'values'} here")

    def warn(self, message: str, *path: str | int, node: str | None = None,
             port: str | None = None) -> None:
        self.items.append(Problem(message, self.index.locate(*path), node, port, "warning",
                                  key=_key(path)))

    def parameter_path(self, base: tuple[str | int, ...],
                       parameter: str) -> tuple[str | int, ...]:
        """The key path of a parameter (``jasper.3.kernel``) under ``base`` (a node's
        ``params``): a number part is a list index where the file has that list item."""
        path = base
        for part in parameter.split("."):
            if part.isdigit() and self._written(*path, int(part)):
                path = (*path, int(part))
            else:
                path = (*path, part)
        return path

    def _written(self, *path: str | int) -> bool:
        """Whether the file has ``path`` itself (not only an ancestor of it)."""
        return self.index.locate(*path) != self.index.locate(*path[:-1])

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.items)


def _key(path: tuple[str | int, ...]) -> str | None:
    return ".".join(map(str, path)) if path else None


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _mapping(value: Any, problems: _Problems, what: str, *path: str | int) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.error(f"{what} must be a mapping (got {value!r} that is a "
                       f"{type(value).__name__})", *path)
        return {}
    return dict(value)


@functools.cache
def _signature(obj: Callable[..., Any], skip: tuple[str, ...] = ()) -> tuple[
        dict[str, inspect.Parameter], bool]:
    """Parameters a callable accepts by keyword (minus ``skip``) and whether it takes **kwargs."""
    target = obj.__init__ if inspect.isclass(obj) else obj  # type: ignore[misc]
    params = inspect.signature(target).parameters
    accepted = {
        name: p for name, p in params.items()
        if name not in ("self", *skip)
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return accepted, var_kw


def _check_params(params: Mapping[str, Any], obj: Callable[..., Any], problems: _Problems,
                  what: str, path: tuple[str | int, ...], skip: tuple[str, ...] = (),
                  node: str | None = None, params_key: str | None = "params") -> bool:
    """Unknown and missing parameters against ``obj``'s signature; True when all is well."""
    accepted, var_kw = _signature(obj, skip)
    ok = True
    ppath = (*path, params_key) if params_key else path
    if not var_kw:
        for key in params:
            if key not in accepted:
                problems.error(f"{what} has no parameter '{key}'{_suggest(key, accepted)} "
                               f"(it takes: {', '.join(accepted) or 'none'})",
                               *ppath, key, node=node)
                ok = False
    for name, p in accepted.items():
        if p.default is p.empty and name not in params:
            problems.error(f"{what} needs the parameter '{name}'", *ppath, node=node)
            ok = False
    return ok


# --- values against annotations --------------------------------------------------------------

_SIMPLE: dict[Any, Validator] = {int: instance_of(int), float: number, bool: boolean,
                                 str: instance_of(str)}
_UNION_TYPES: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), bool: (bool,),
                                             str: (str,)}


def _annotation_validator(annotation: Any) -> Validator | None:
    """What a simple annotation asks of a YAML value: ``int``, ``float`` (an int too), ``bool``,
    ``str``, a ``Literal``, a union of these, ``X | None``. None for anything else (a list, a
    class, ``Any``): such values are the constructor's to check."""
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return in_(typing.get_args(annotation))
    if origin not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(annotation)
    rest = [a for a in args if a is not type(None)]
    if not rest or any(a not in _UNION_TYPES for a in rest):
        return None
    if len(rest) == 1:
        inner = _SIMPLE[rest[0]]
    else:
        inner = instance_of(*dict.fromkeys(t for a in rest for t in _UNION_TYPES[a]))
    return optional(inner) if len(rest) < len(args) else inner


@functools.cache
def _annotated(obj: Callable[..., Any]) -> dict[str, tuple[Validator, bool]]:
    """``obj``'s parameters that have a simple annotation: name -> (validator, whether the
    default is None). String annotations (``from __future__ import annotations``) are evaluated
    in the function's module, one at a time, and skipped when they cannot be."""
    target = obj.__init__ if inspect.isclass(obj) else obj  # type: ignore[misc]
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return {}
    namespace = getattr(inspect.unwrap(target), "__globals__", {})
    found: dict[str, tuple[Validator, bool]] = {}
    for name, param in params.items():
        annotation = param.annotation
        if annotation is param.empty:
            continue
        if isinstance(annotation, str):
            try:  # the plugin's own source code, never the graph file
                annotation = eval(annotation, dict(namespace))
            except Exception:
                continue
        validator = _annotation_validator(annotation)
        if validator is not None:
            found[name] = (validator, param.default is None)
    return found


def _value_problems(values: Mapping[str, Any], obj: Callable[..., Any],
                   known: Mapping[str, Validator] | None = None,
                   known_suffixes: Mapping[str, Validator] | None = None
                   ) -> list[ParameterError]:
    """The values that break what ``obj``'s annotations (or ``known``: a validator for a
    well-known name; ``known_suffixes``: for names ending so) require, in ``values``' order."""
    annotated = _annotated(obj)
    found = []
    for name, value in values.items():
        validator = (known or {}).get(name)
        if validator is None:
            validator = next((v for suffix, v in (known_suffixes or {}).items()
                              if name.endswith(suffix)), None)
        if validator is not None:
            if name in annotated and (annotated[name][1] or annotated[name][0].accepts(None)):
                validator = optional(validator)
        elif name in annotated:
            validator, none_default = annotated[name]
            if none_default:
                validator = optional(validator)
        else:
            continue
        error = validator.problem(name, value)
        if error is not None:
            found.append(error)
    return found
