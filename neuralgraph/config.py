"""Reading graph files: YAML with line numbers, Hydra-grammar overrides, OmegaConf interpolation.

Every key of the document keeps the line it was written on (``LineIndex``), so that a problem found
later points at the YAML line; a key set by an override points at that override instead.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from neuralgraph.errors import GraphError, Location, Problem, UserError

__all__ = ["LineIndex", "apply_overrides", "load_yaml", "resolve"]

KeyPath = tuple[str | int, ...]

# libyaml's loader where PyYAML was built with it (10-20x faster than the pure-Python one).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineIndex:
    """Maps a key path such as ``("nodes", "encoder", "params")`` to where it was written."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self._where: dict[KeyPath, Location] = {}

    def add(self, path: KeyPath, location: Location) -> None:
        self._where[path] = location

    def locate(self, *path: str | int) -> Location:
        """The location of ``path``, or of its nearest ancestor that has one."""
        key: KeyPath = tuple(path)
        while key:
            if key in self._where:
                return self._where[key]
            key = key[:-1]
        return self._where.get((), Location(self.file))

    def drop(self, path: KeyPath) -> None:
        """Forget ``path`` and everything under it (a deleted key)."""
        for key in [k for k in self._where if k[: len(path)] == path]:
            del self._where[key]


def load_yaml(path: str | Path) -> tuple[dict[str, Any], LineIndex]:
    """Parse a YAML graph file with the safe loader; return its mapping and its line index."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"graph file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read graph file {path}: {exc.strerror}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], LineIndex]:
    """Parse YAML ``text`` (named ``file`` in messages) into a mapping and its line index."""
    index = LineIndex(file)
    index.add((), Location(file, 1))
    try:
        node = yaml.compose(text, Loader=_LOADER)  # parsed once; data built from the nodes
        if node is not None:
            _index_node(node, (), index)  # before construction, which flattens merge keys
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
    bad_keys = [k for k in _walk_keys(data) if not isinstance(k, str)]
    if bad_keys:
        raise GraphError([Problem(f"keys must be strings (found {bad_keys[0]!r})",
                                  Location(file, 1))])
    return data, index


def _walk_keys(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _walk_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_keys(item)


def _index_node(node: yaml.Node, path: KeyPath, index: LineIndex) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*path, key)
            index.add(child, Location(index.file, key_node.start_mark.line + 1,
                                      key_node.start_mark.column + 1))
            _index_node(value_node, child, index)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            index.add(child, Location(index.file, item.start_mark.line + 1,
                                      item.start_mark.column + 1))
            _index_node(item, child, index)


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], index: LineIndex
) -> dict[str, Any]:
    """Apply Hydra-grammar overrides (``a.b=1``, ``+a.c=2``, ``++a.d=3``, ``~a.e``) to ``data``.

    Keys changed by an override are located at that override in messages.
    """
    if not overrides:
        return data
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    cfg = _create(data, index)
    problems: list[Problem] = []
    for i, text in enumerate(overrides):
        where = Location(f"override #{i + 1} '{text}'")
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as exc:
            problems.append(Problem(f"cannot parse override: {_first_line(exc)}", where))
            continue
        key = override.key_or_group
        if not key or any(not part for part in key.split(".")):
            problems.append(Problem(f"'{key}' is not a key path; write names joined by dots "
                                    "(trainer.max_epochs)", where))
            continue
        path = _split_key(key)
        try:
            exists = _exists(cfg, key)
        except OmegaConfBaseException as exc:
            problems.append(Problem(f"cannot use key '{key}': {_first_line(exc)}", where))
            continue
        if override.is_delete():
            if not exists:
                problems.append(Problem(f"cannot delete '{key}': no such key", where))
                continue
            try:
                parent_key, _, leaf = key.rpartition(".")
                parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
                del parent[int(leaf) if isinstance(parent, ListConfig) and leaf.isdigit()
                           else leaf]
            except (OmegaConfBaseException, IndexError, TypeError) as exc:
                problems.append(Problem(f"cannot delete '{key}': {_first_line(exc)}", where))
                continue
            index.drop(path)
            continue
        value = override.value()
        if override.is_add() and exists:
            problems.append(Problem(
                f"cannot add '{key}': it already exists; to change it write {key}=...", where))
            continue
        if not override.is_add() and not override.is_force_add() and not exists:
            problems.append(Problem(
                f"cannot override '{key}': no such key; to add it write +{key}=...", where))
            continue
        try:
            OmegaConf.update(cfg, key, _plain(value), merge=False, force_add=True)
        except OmegaConfBaseException as exc:
            problems.append(Problem(f"cannot set '{key}': {_first_line(exc)}", where))
            continue
        index.drop(path)
        index.add(path, where)
    if problems:
        raise GraphError(problems)
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    """Hydra values are plain Python except for sweeps, which have no meaning here."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if not isinstance(value, (str, int, float, bool, type(None))):
        raise UserError(f"override value {value!r} is a sweep or function; give one value")
    return value


def _split_key(key: str) -> KeyPath:
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))


def _exists(cfg: DictConfig, key: str) -> bool:
    sentinel = object()
    return OmegaConf.select(cfg, key, default=sentinel, throw_on_missing=False) is not sentinel


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def resolve(data: dict[str, Any], index: LineIndex) -> dict[str, Any]:
    """Resolve ``${...}`` interpolations; a broken one is reported at the line of its key."""
    bad_keys = [k for k in _walk_keys(data) if not isinstance(k, str)]
    if bad_keys:  # a mapping built in Python (Graph.from_config) may have any keys
        raise GraphError([Problem(f"keys must be strings (found {bad_keys[0]!r})",
                                  index.locate())])
    if not _has_interpolation(data):
        return copy.deepcopy(data)
    simple = _resolve_references(data)
    if simple is not None:
        return simple
    cfg = _create(data, index)
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException:
        problems: list[Problem] = []
        _resolve_each(cfg, (), index, problems)  # locate each broken interpolation
        if problems:
            raise GraphError(problems) from None
        raise


def _has_interpolation(value: Any) -> bool:
    """Whether a string under ``value`` contains ``${`` (something OmegaConf would resolve)."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_interpolation(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_interpolation(v) for v in value)
    return False


_REFERENCE = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\}")


class _NotSimple(Exception):
    """An interpolation that only OmegaConf can resolve (or report)."""


def _resolve_references(data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` with every whole-string ``${a.b}`` replaced by the value at ``a.b``.

    The common case, resolved without OmegaConf (whose config objects cost ~1 ms per graph
    node). None when some ``${`` is anything else (a resolver, text around it, a missing key,
    a cycle): OmegaConf then resolves it or reports it at its line.
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


def _create(data: dict[str, Any], index: LineIndex) -> DictConfig:
    """``OmegaConf.create(data)``; a malformed interpolation ("${a") is a GraphError at its line."""
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as exc:
        raise GraphError(_bad_interpolations(data, index) or [
            Problem(f"cannot read the graph: {_first_line(exc)}", index.locate())]) from None


def _leaves(value: Any, path: KeyPath = ()) -> Iterable[tuple[KeyPath, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path, value


def _bad_interpolations(data: dict[str, Any], index: LineIndex) -> list[Problem]:
    """A problem for each string that OmegaConf cannot parse as an interpolation."""
    problems = []
    for path, value in _leaves(data):
        if not isinstance(value, str) or "${" not in value:
            continue
        try:
            OmegaConf.create({"value": value})
        except OmegaConfBaseException as exc:
            problems.append(Problem(
                f"'{'.'.join(map(str, path))}': malformed interpolation {value!r}: "
                f"{_first_line(exc)} (write ${{a.b}}, or \\${{ for a literal '${{')",
                index.locate(*path)))
    return problems


def _resolve_each(cfg: Any, path: KeyPath, index: LineIndex, problems: list[Problem]) -> None:
    """Touch every value so that each failing interpolation is reported on its own."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(cfg, DictConfig):
        items = ((k, k) for k in cfg.keys())
    else:
        items = ((i, i) for i in range(len(cfg)))
    for key, name in items:
        child_path = (*path, name)
        try:
            value = cfg[key]
        except OmegaConfBaseException as exc:
            message = _first_line(exc)
            problems.append(Problem(
                f"cannot resolve '{'.'.join(map(str, child_path))}': {message}",
                index.locate(*child_path)))
            continue
        if OmegaConf.is_config(value):
            _resolve_each(value, child_path, index, problems)
