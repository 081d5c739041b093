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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neuralgraph.config import LineIndex
from neuralgraph.errors import Problem

__all__: list[str] = []  # private to the checker's modules


class _Problems:
    """Collects problems, locating each by its key path in the graph file."""

    def __init__(self, index: LineIndex) -> None:
        self.index = index
        self.items: list[Problem] = []

    def error(self, message: str, *path: str | int, node: str | None = None,
              port: str | None = None, **fields: str | None) -> None:
        self.items.append(Problem(message, self.index.locate(*path), node, port, "error",
                                  key=_key(path), **fields))

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
