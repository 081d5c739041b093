"""Reading graph files: YAML with line numbers, Hydra-grammar overrides, OmegaConf interpolation.

Every key of the document keeps the line it was written on (``LineIndex``), so that a problem found
later points at the YAML line; a key set by an override points at that override instead.
"""

from __future__ import annotations

import copy
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from neuralgraph.errors import GraphError, Location, Problem, UserError

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_FILE_BYTES", "LineIndex", "apply_overrides",
           "load_yaml", "override_location", "resolve"]

KeyPath = tuple[str | int, ...]

# libyaml's loader where PyYAML was built with it (10-20x faster than the pure-Python one).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Bounds on the work one graph file or override can ask for. A graph file is read whole, so
# its size is bounded (a 1000-node graph is ~100 KB). Aliases are linear to parse but can
# expand exponentially ("billion laughs"), so the nodes they repeat are counted while the
# document is indexed. Deep nesting would exhaust the recursion of the code that reads it
# (OmegaConf fails at ~150 levels); a graph's deepest key is ~6 levels down.
MAX_FILE_BYTES = 16 * 2**20
"""The largest graph file read (16 MiB)."""
MAX_ALIAS_NODES = 100_000
"""How many nodes YAML aliases may add to a document by repeating the nodes of their anchors."""
MAX_DEPTH = 64
"""How deep mappings and lists may nest, in a graph file or an override's key and value."""


class LineIndex:
    """Maps a key path such as ``("nodes", "encoder", "params")`` to where it was written."""

    def __init__(self, file: str | None,
                 where: dict[KeyPath, Location] | None = None) -> None:
        self.file = file
        self._where: dict[KeyPath, Location] = {} if where is None else where
        self._overridden: dict[KeyPath, Location] = {}  # keys set or deleted by an override

    def add(self, path: KeyPath, location: Location) -> None:
        self._where[path] = location

    def add_override(self, path: KeyPath, location: Location, *, deleted: bool = False) -> None:
        """``path`` was set (or ``deleted``) by the override at ``location``: it and everything
        under it are located there from now on."""
        self.drop(path)
        if not deleted:
            self._where[path] = location
        self._overridden[path] = location

    def overrides_under(self, *path: str | int, itself: bool = False) -> list[Location]:
        """The overrides that set or deleted a key strictly under ``path`` (or ``path``
        ``itself`` too), in their order."""
        key: KeyPath = tuple(path)
        shortest = len(key) if itself else len(key) + 1
        found = {loc: None for p, loc in self._overridden.items()
                 if len(p) >= shortest and p[: len(key)] == key}
        return list(found)

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
        for key in [k for k in self._overridden if k[: len(path)] == path]:
            del self._overridden[key]


def load_yaml(path: str | Path) -> tuple[dict[str, Any], LineIndex]:
    """Parse a YAML graph file with the safe loader; return its mapping and its line index.

    Only a regular file of at most :data:`MAX_FILE_BYTES` is read (a FIFO would block, and
    ``/dev/zero`` never ends), and it must be UTF-8 text.
    """
    path = Path(path)
    return parse_yaml(_decode(_read_graph_file(path), str(path)), str(path))


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _not_regular(path: Path, mode: int) -> UserError:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
    target = os.path.realpath(path)
    if target != os.path.abspath(path):
        kind += f", {target}"
    return UserError(f"graph file {path}: not a regular file (it is {kind}); a graph file must "
                     "be a regular file of YAML text")


def _too_large(path: Path, size: int | None) -> UserError:
    found = f"{size:,} bytes" if size is not None else f"more than {MAX_FILE_BYTES:,} bytes"
    return UserError(f"graph file {path}: larger than {MAX_FILE_BYTES // 2**20} MiB ({found}); "
                     f"a graph file must be at most {MAX_FILE_BYTES:,} bytes")


def _read_graph_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES (checked on the opened file too:
    the path may change between the two looks)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        if info.st_size > MAX_FILE_BYTES:
            raise _too_large(path, info.st_size)
        # O_NONBLOCK: were the path swapped for a FIFO meanwhile, opening it must not wait
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UserError(f"graph file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read graph file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        try:
            data = file.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise UserError(f"cannot read graph file {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(path, None)
    return data


def _decode(data: bytes, file: str) -> str:
    """UTF-8 text, or a problem at the line and column of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
    line = data.count(b"\n", 0, start) + 1
    column = start - (data.rfind(b"\n", 0, start) + 1) + 1
    hint = ""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = " (it starts with a UTF-16 byte-order mark: save it as UTF-8)"
    elif b"\x00" in data[:8192]:
        hint = " (it has NUL bytes: a binary file?)"
    raise GraphError([Problem(
        f"not UTF-8 text: byte 0x{data[start]:02x} at column {column} is not valid UTF-8"
        f"{hint}; a graph file must be YAML text in UTF-8", Location(file, line, column))])


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], LineIndex]:
    """Parse YAML ``text`` (named ``file`` in messages) into a mapping and its line index.

    Refused, each with its line: a key written twice in one mapping, aliases that would add more
    than :data:`MAX_ALIAS_NODES` nodes (or that refer to their own anchor), nesting deeper than
    :data:`MAX_DEPTH`, and characters that YAML text cannot hold.
    """
    where = {(): Location(file, 1)}  # the index's table, filled by _index_document
    index = LineIndex(file, where)
    try:
        node = yaml.compose(text, Loader=_LOADER)  # parsed once; data built from the nodes
        if node is not None:
            _index_document(node, text, file, where)  # before construction (it flattens merges)
        data = yaml.constructor.SafeConstructor().construct_document(node) if node else None
    except yaml.reader.ReaderError as exc:
        raise GraphError([_reader_problem(exc, text, file)]) from None
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


def _reader_problem(exc: yaml.reader.ReaderError, text: str, file: str) -> Problem:
    """A character YAML refuses (a control character: binary data), at its line and column."""
    char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
    at = text.find(char) if char else -1
    if at < 0:
        return Problem(f"invalid YAML: {exc.reason}", Location(file))
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return Problem(
        f"character U+{ord(char):04X} at column {column} cannot appear in YAML text "
        f"({exc.reason}; a binary file?); a graph file must be YAML text",
        Location(file, line, column))


def _walk_keys(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _walk_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_keys(item)


class _Walk:
    """What indexing one document has seen: the nodes walked (an alias walks its anchor's nodes
    again), how many were walked again, and the keys written twice."""

    __slots__ = ("duplicates", "file", "repeats", "seen", "where")

    def __init__(self, file: str | None, where: dict[KeyPath, Location]) -> None:
        self.file, self.where = file, where
        self.seen: set[int] = set()
        self.repeats = 0
        self.duplicates: list[Problem] = []


class _Refused(Exception):
    """The document asks for too much: nesting too deep, or aliases that expand too far."""

    def __init__(self, node: yaml.Node, path: KeyPath) -> None:
        super().__init__()
        self.node, self.path = node, path


def _index_document(node: yaml.Node, text: str, file: str,
                    where: dict[KeyPath, Location]) -> None:
    """Record where every key of the document's tree is written (in ``where``); refuse what
    would make reading it unbounded, and keys written twice."""
    walk = _Walk(file, where)
    if not isinstance(node, _COLLECTIONS):
        return  # a scalar document: refused as not a mapping
    try:
        _index_node(node, (), walk)
    except _Refused as refused:
        problem = _alias_problem(text, file)  # where exactly: only aliases have a mark
        if problem is None:
            mark = refused.node.start_mark
            problem = Problem(
                f"nested deeper than {MAX_DEPTH} levels (at "
                f"'{_dotted(refused.path[:4])}...'); mappings and lists in a graph file may "
                f"nest at most {MAX_DEPTH} levels", Location(file, mark.line + 1,
                                                              mark.column + 1))
        raise GraphError([problem]) from None
    if walk.duplicates:
        raise GraphError(walk.duplicates)


def _dotted(path: KeyPath) -> str:
    return ".".join(map(str, path))


_COLLECTIONS = (yaml.MappingNode, yaml.SequenceNode)


def _index_node(node: yaml.Node, path: KeyPath, walk: _Walk) -> None:
    """Index a mapping or a list and what it holds (scalars are indexed by their parent, and
    cost no call: they are most of a graph)."""
    if len(path) >= MAX_DEPTH:
        raise _Refused(node, path)
    ident = id(node)
    if ident in walk.seen:  # reached again through an alias: its items are repeated
        walk.repeats += 1 + len(node.value)
        if walk.repeats > MAX_ALIAS_NODES:
            raise _Refused(node, path)
    else:
        walk.seen.add(ident)
    where, file = walk.where, walk.file
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            mark = key_node.start_mark
            if not isinstance(key, str):  # a sequence or mapping used as a key (? [a, b])
                walk.duplicates.append(Problem(
                    f"keys must be strings (found a {type(key_node).__name__[:-4].lower()} "
                    "used as a key)", Location(file, mark.line + 1, mark.column + 1),
                    key=_dotted(path) or None))
                continue
            child = (*path, key)
            location = Location(file, mark.line + 1, mark.column + 1)
            first = where.setdefault(child, location)
            if first is not location:  # the second replaces the first: index only the second
                walk.duplicates.append(_duplicate(key, path, first, location))
                for old in [k for k in where if k[: len(child)] == child]:
                    del where[old]
                where[child] = location
            if isinstance(value_node, _COLLECTIONS):
                _index_node(value_node, child, walk)
    else:
        for i, item in enumerate(node.value):
            child = (*path, i)
            where[child] = Location(file, item.start_mark.line + 1, item.start_mark.column + 1)
            if isinstance(item, _COLLECTIONS):
                _index_node(item, child, walk)


def _duplicate(key: str, path: KeyPath, first: Location, second: Location) -> Problem:
    hint = "; merge several mappings with <<: [*a, *b]" if key == "<<" else (
        "; a key may appear once in a mapping (the second would silently replace the first)")
    where = f"line {first.line}"
    if first.line == second.line:  # a flow mapping: {a: 1, a: 2}
        where += f", column {first.column}"
    return Problem(f"duplicate key '{key}' (first at {where}){hint}", second,
                   key=_dotted(path) or None)


def _alias_problem(text: str, file: str | None) -> Problem | None:
    """The alias that makes the document expand past MAX_ALIAS_NODES, or that refers to the
    node it is inside (it would expand forever), located at the alias itself. One pass over the
    parser's events, counting each anchor's expanded size; None when no alias is at fault."""
    sizes: dict[str, int] = {}
    open_anchors: list[list[Any]] = []  # [anchor or None, nodes so far] per open collection
    added = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if event.anchor:
                sizes.pop(event.anchor, None)
            open_anchors.append([event.anchor, 1])
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = open_anchors.pop()
            if anchor:
                sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            where = Location(file, mark.line + 1, mark.column + 1)
            if event.anchor not in sizes:
                return Problem(
                    f"the alias *{event.anchor} is inside the node anchored &{event.anchor}, "
                    "so it would repeat itself forever; an alias must refer to a node written "
                    "before it, outside it", where)
            size = sizes[event.anchor]
            added += size
            if added > MAX_ALIAS_NODES:
                return Problem(
                    f"the alias *{event.anchor} repeats {size:,} nodes, which brings the nodes "
                    f"that aliases add to {added:,}; aliases may add at most "
                    f"{MAX_ALIAS_NODES:,} nodes to a graph file (an alias bomb?)", where)
        else:
            continue
        if open_anchors:
            open_anchors[-1][1] += size
    return None


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
        where = override_location(i + 1, text)
        depth = _nesting(text)
        if depth > MAX_DEPTH:
            problems.append(Problem(f"the override nests {depth} levels deep; its key and value "
                                    f"may nest at most {MAX_DEPTH} levels", where))
            continue
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
            index.add_override(path, where, deleted=True)
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
        except _NotOneValue:
            problems.append(Problem(
                f"the value '{text.partition('=')[2]}' is a sweep or a function (several "
                f"values); an override gives one value (quote a string: {key}='...')", where))
            continue
        index.add_override(path, where)
    if problems:
        raise GraphError(problems)
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def override_location(number: int, text: str) -> Location:
    """Where a problem that override ``number`` (1-based) caused is reported: the override
    itself, quoted as it was given (shortened past 100 characters)."""
    shown = text if len(text) <= 100 else text[:97] + "..."
    return Location(f"override #{number} on the command line ({shown})")


def _nesting(text: str) -> int:
    """How deep an override nests: its key's parts plus its value's brackets (outside quotes),
    counted before Hydra's recursive parser sees it."""
    key, _, value = text.partition("=")
    depth = deepest = key.count(".") + 1
    quote = ""
    for char in value:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]})":
            depth -= 1
    return deepest


def _plain(value: Any) -> Any:
    """Hydra values are plain Python except for sweeps, which have no meaning here."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if not isinstance(value, (str, int, float, bool, type(None))):
        raise _NotOneValue(value)
    return value


class _NotOneValue(Exception):
    """An override value that is a sweep or a function (Hydra's ``a,b``, ``range(1,3)``)."""


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
    try:
        simple = _resolve_references(data)
    except _TooLarge:
        simple = None  # the estimate below says where
    if simple is not None:
        return simple
    problem = _interpolation_problem(data, index)  # OmegaConf cannot be stopped half-way
    if problem is not None:
        raise GraphError([problem])
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


class _TooLarge(Exception):
    """References that repeat more than MAX_ALIAS_NODES nodes."""


def _resolve_references(data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` with every whole-string ``${a.b}`` replaced by the value at ``a.b``.

    The common case, resolved without OmegaConf (whose config objects cost ~1 ms per graph
    node). None when some ``${`` is anything else (a resolver, text around it, a missing key,
    a cycle): OmegaConf then resolves it or reports it at its line.
    """
    raw = copy.deepcopy(data)
    copied = [0]  # nodes made by references: bounded, as aliases are

    def lookup(path: str) -> Any:
        node: Any = raw
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise _NotSimple(path)
            node = node[part]
        return node

    def fix(value: Any, seen: frozenset[str]) -> Any:
        if seen:
            copied[0] += 1
            if copied[0] > MAX_ALIAS_NODES:
                raise _TooLarge
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


_INTERPOLATION = re.compile(r"\$\{([^${}]*)\}")  # an innermost ${...}
_KEY_PATH = re.compile(r"\.*[A-Za-z_][\w-]*(?:\.[\w-]+)*")
_TEXT_UNIT = 100  # characters of text counted as one node


def _interpolation_problem(data: dict[str, Any], index: LineIndex) -> Problem | None:
    """The first value (in document order) whose interpolations would bring what all of them
    add past MAX_ALIAS_NODES, counting a node or _TEXT_UNIT characters as one: ``${a}`` copies
    ``a`` whole, and ``"${s}${s}"`` doubles ``s``'s text, so that a few lines can ask for more
    than memory holds. An upper bound: any key path named inside ``${...}`` (a resolver's
    argument too) counts as copied; one that names no key, or a cycle, counts nothing."""
    sizes: dict[KeyPath, int] = {}
    cap = MAX_ALIAS_NODES * 16  # sizes only need comparing with the bound

    def target(path: KeyPath) -> Any:
        node: Any = data
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                raise KeyError(part)
        return node

    def references(text: str, path: KeyPath) -> Iterable[KeyPath]:
        for body in _INTERPOLATION.findall(text):
            for token in _KEY_PATH.findall(body):
                dots = len(token) - len(token.lstrip("."))
                base = path[: max(len(path) - dots, 0)] if dots else ()
                yield (*base, *_split_key(token.lstrip(".")))

    def added(text: str, path: KeyPath, active: frozenset[KeyPath]) -> int:
        total = 0
        for ref in references(text, path):
            if ref not in sizes:
                if ref in active:
                    continue  # a cycle: OmegaConf reports it
                try:
                    value = target(ref)
                except KeyError:
                    continue
                sizes[ref] = min(size(value, ref, active | {ref}), cap)
            total += sizes[ref]
        return min(total, cap)

    def size(value: Any, path: KeyPath, active: frozenset[KeyPath]) -> int:
        if isinstance(value, dict):
            return min(1 + sum(size(v, (*path, k), active) for k, v in value.items()), cap)
        if isinstance(value, list):
            return min(1 + sum(size(v, (*path, i), active) for i, v in enumerate(value)), cap)
        if isinstance(value, str):
            own = 1 + len(value) // _TEXT_UNIT
            return own + added(value, path, active) if "${" in value else own
        return 1

    total = 0
    for path, value in _leaves(data):
        if not isinstance(value, str) or "${" not in value:
            continue
        extra = added(value, path, frozenset({path}))
        total += extra
        if total > MAX_ALIAS_NODES:
            return Problem(
                f"its interpolations copy {extra:,} nodes (or {_TEXT_UNIT}-character pieces of "
                f"text), which brings what interpolations copy to {total:,}; interpolations "
                f"may copy at most {MAX_ALIAS_NODES:,} (an interpolation bomb?)",
                index.locate(*path), key=_dotted(path))
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
