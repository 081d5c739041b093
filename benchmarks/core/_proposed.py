"""Proposed speed-ups of the graph loader and checker, applied by monkeypatching (for measuring).

Core files are not edited here: :func:`proposed` swaps these versions in for the duration of a
``with`` block so that ``check_1000.py`` can time current and proposed code side by side. Each
function says which core function it replaces and what changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from neuralgraph import checker, config, graph, trainer_checks

# Fixes 1 (one libyaml parse), 2 (resolving plain ${a.b} references without OmegaConf) and 4
# (parsing only Trainer.__init__'s signature) are in core now: "proposed" uses core's versions.
parse_yaml = config.parse_yaml
resolve = config.resolve


def freeze(value: Any) -> Any:
    """A hashable, type-exact key for YAML parameters (1, 1.0 and True stay distinct)."""
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((k, freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(freeze(v) for v in value))
    return (type(value).__name__, value)


_CACHE: dict[tuple[type, Any], Any] = {}
_original_instantiate = checker._instantiate
_original_check = checker.check


def instantiate(cls: type, params: Mapping[str, Any], problems: Any, what: str,
                path: tuple[str | int, ...], node: str | None) -> Any:
    """``checker._instantiate`` with one meta instance per (class, parameters) per check.

    Change: nodes with the same module and parameters (a chain of identical blocks) share the
    meta instance the checker reads port types from, so each distinct configuration is built
    once. Only successful builds are cached: a failing one reports at every node that uses it.
    """
    try:
        key = (cls, freeze(params))
        hash(key)
    except TypeError:  # an unhashable parameter value: build as today
        return _original_instantiate(cls, params, problems, what, path, node)
    if key not in _CACHE:
        instance = _original_instantiate(cls, params, problems, what, path, node)
        if instance is None:
            return None
        _CACHE[key] = instance
    return _CACHE[key]


def check(*args: Any, **kwargs: Any) -> Any:
    """``checker.check`` with a fresh instance cache (the real fix passes a dict down)."""
    _CACHE.clear()
    try:
        return _original_check(*args, **kwargs)
    finally:
        _CACHE.clear()


trainer_parameters = trainer_checks.trainer_parameters


@contextlib.contextmanager
def proposed(parse: bool = True, resolve_fast: bool = True, dedupe: bool = True,
             trainer: bool = True) -> Iterator[None]:
    """Swap the proposed functions in (``graph``/``config``/``checker``/``trainer_checks`` module
    globals)."""
    patches: list[tuple[Any, str, Any]] = []
    if trainer:
        patches.append((trainer_checks, "trainer_parameters", trainer_parameters))
    if parse:
        patches += [(config, "parse_yaml", parse_yaml), (graph, "parse_yaml", parse_yaml)]
    if resolve_fast:
        patches.append((graph, "resolve", resolve))
    if dedupe:
        patches += [(checker, "_instantiate", instantiate), (graph, "check", check)]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    try:
        for mod, name, value in patches:
            setattr(mod, name, value)
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)
