"""Proposed speed-ups of the graph loader and checker, applied by monkeypatching (for measuring).

Core files are not edited here: :func:`proposed` swaps these versions in for the duration of a
``with`` block so that ``check_1000.py`` can time current and proposed code side by side. Each
function says which core function it replaces and what changes.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import importlib.util
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from neuralgraph import checker, config, graph
from neuralgraph.config import LineIndex
from neuralgraph.errors import GraphError, Location, Problem

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it (10-20x faster than the pure-Python one)."""


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], LineIndex]:
    """``config.parse_yaml`` parsing once, with libyaml when available.

    Change: today the text is parsed twice with the pure-Python loader (``yaml.compose`` for the
    line index, then ``yaml.safe_load`` for the data). Here it is composed once with
    ``CSafeLoader`` and the data is constructed from that node tree. The index is built before
    constructing, because construction flattens ``<<`` merge keys in the node tree in place.
    """
    index = LineIndex(file)
    index.add((), Location(file, 1))
    try:
        node = yaml.compose(text, Loader=LOADER)
        if node is not None:
            config._index_node(node, (), index)
        data = yaml.constructor.SafeConstructor().construct_document(node) if node else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise GraphError([Problem(f"invalid YAML: {problem}", Location(file, line))]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GraphError([Problem(
            f"a graph file must be a mapping of keys (name, nodes, ...); found a "
            f"{type(data).__name__}", Location(file, 1))])
    bad_keys = [k for k in config._walk_keys(data) if not isinstance(k, str)]
    if bad_keys:
        raise GraphError([Problem(f"keys must be strings (found {bad_keys[0]!r})",
                                  Location(file, 1))])
    return data, index


def has_interpolation(value: Any) -> bool:
    """Whether any string value under ``value`` contains ``${`` (what OmegaConf would resolve)."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(has_interpolation(v) for v in value.values())
    if isinstance(value, list):
        return any(has_interpolation(v) for v in value)
    return False


def resolve(data: dict[str, Any], index: LineIndex) -> dict[str, Any]:
    """``config.resolve`` that leaves OmegaConf out of the common cases, and resolves once.

    Changes: (1) no ``${`` anywhere: a deep copy, no OmegaConf at all (``OmegaConf.create`` alone
    costs ~1 ms per graph node); (2) every interpolation a plain absolute reference
    (``${width}``, ``${model.enc.d}``) to an existing key: resolved in Python by
    :func:`resolve_references`; (3) otherwise OmegaConf as today, but one
    ``to_container(resolve=True)``; the per-key walk ``_resolve_each`` that locates each broken
    interpolation runs only when that failed (today it always runs first, then ``to_container``
    resolves everything again).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not has_interpolation(data):
        return copy.deepcopy(data)
    simple = resolve_references(data)
    if simple is not None:
        return simple
    cfg = OmegaConf.create(data)
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException:
        problems: list[Problem] = []
        config._resolve_each(cfg, (), index, problems)
        if problems:
            raise GraphError(problems) from None
        raise


_REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}")


class _NotSimple(Exception):
    """An interpolation that only OmegaConf can resolve (or report)."""


def resolve_references(data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` with every whole-string ``${a.b}`` replaced by the value at ``a.b``.

    None when some ``${`` is anything else (a resolver, a relative or list-index reference,
    text around it, a missing key, a cycle): the caller then falls back on OmegaConf, which
    resolves it or reports it with its line.
    """
    raw = copy.deepcopy(data)

    def lookup(path: str) -> Any:
        node: Any = raw
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise _NotSimple(path)
            node = node[part]
        return node

    def fix(value: Any, seen: frozenset[str]) -> Any:
        if isinstance(value, str):
            if "${" not in value:
                return value
            match = _REFERENCE.fullmatch(value)
            if match is None or match.group(1) in seen:
                raise _NotSimple(value)
            target = match.group(1)
            return fix(copy.deepcopy(lookup(target)), seen | {target})
        if isinstance(value, dict):
            return {k: fix(v, seen) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v, seen) for v in value]
        return value

    try:
        return fix(raw, frozenset())
    except _NotSimple:
        return None


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


@functools.lru_cache(maxsize=1)
def trainer_parameters() -> frozenset[str]:
    """``checker.trainer_parameters`` parsing only ``Trainer.__init__``'s signature.

    Change: today ``ast.parse`` reads all of Lightning's trainer.py (~0.35 s, once per process,
    i.e. on every ``neuralgraph check``); here only the text from ``def __init__(`` (after
    ``class Trainer``) to ``) -> None:`` is parsed (~3 ms). Falls back on the full parse.
    """
    spec = importlib.util.find_spec("pytorch_lightning")
    if spec is None or spec.origin is None:
        return frozenset()
    try:
        source = (Path(spec.origin).parent / "trainer" / "trainer.py").read_text(
            encoding="utf-8")
        start = source.index("def __init__(", source.index("class Trainer"))
        end = source.index(") -> None:", start)
        func = ast.parse(source[start:end] + "): pass").body[0]
    except (OSError, ValueError, SyntaxError):
        return _original_trainer_parameters()
    assert isinstance(func, ast.FunctionDef)
    return frozenset(a.arg for a in [*func.args.args, *func.args.kwonlyargs] if a.arg != "self")


_original_trainer_parameters = checker.trainer_parameters


@contextlib.contextmanager
def proposed(parse: bool = True, resolve_fast: bool = True, dedupe: bool = True,
             trainer: bool = True) -> Iterator[None]:
    """Swap the proposed functions in (``graph``/``config``/``checker`` module globals)."""
    patches: list[tuple[Any, str, Any]] = []
    if trainer:
        patches.append((checker, "trainer_parameters", trainer_parameters))
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
