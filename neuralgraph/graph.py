"""``Graph``: a graph file read, overridden, resolved and (on demand) checked."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from neuralgraph.checker import Plan, check
from neuralgraph.config import LineIndex, apply_overrides, load_yaml, parse_yaml, resolve
from neuralgraph.errors import GraphError, Problem
from neuralgraph.registry import Registry, get_registry

__all__ = ["Graph"]


class Graph:
    """A typed graph of neural modules, as declared in YAML.

    ``Graph.from_yaml(path, overrides=[...])`` reads a file; ``check()`` proves it (raising one
    :class:`~neuralgraph.GraphError` listing every problem) and returns the warnings.
    """

    def __init__(self, config: Mapping[str, Any], index: LineIndex | None = None) -> None:
        self.index = index or LineIndex(None)
        self.config: dict[str, Any] = resolve(dict(config), self.index)
        self._plan: Plan | None = None
        self._registry: Registry | None = None

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> Graph:
        """Read a graph file and apply Hydra-grammar overrides (``trainer.max_epochs=5``...)."""
        data, index = load_yaml(path)
        data = apply_overrides(data, list(overrides), index)
        return cls(data, index)

    @classmethod
    def from_string(cls, text: str, overrides: Sequence[str] = (),
                    source: str = "<string>") -> Graph:
        """Read a graph from YAML text (``source`` names it in messages)."""
        data, index = parse_yaml(text, source)
        data = apply_overrides(data, list(overrides), index)
        return cls(data, index)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], overrides: Sequence[str] = ()) -> Graph:
        """Build from a plain mapping (a restored archive's graph, a test)."""
        index = LineIndex(None)
        data = apply_overrides(copy.deepcopy(dict(config)), list(overrides), index)
        return cls(data, index)

    # --- accessors ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The experiment name (``name:``), or ``graph``."""
        return str(self.config.get("name") or "graph")

    @property
    def source(self) -> str | None:
        """The graph file's path, if read from a file."""
        return self.index.file

    def to_yaml(self) -> str:
        """The resolved graph as YAML (what an archive stores)."""
        return yaml.safe_dump(self.config, sort_keys=False, default_flow_style=None)

    # --- checking ----------------------------------------------------------------------------

    def check(self, registry: Registry | None = None) -> list[Problem]:
        """Check the whole graph statically; raise GraphError with every problem found.

        Returns the warnings (things that can only be checked at run time).
        """
        return list(self.plan(registry).warnings)

    def plan(self, registry: Registry | None = None) -> Plan:
        """The checked execution plan (cached per registry)."""
        registry = registry or get_registry()
        if self._plan is None or self._registry is not registry:
            plan, problems = check(self.config, self.index, registry)
            if plan is None:
                raise GraphError(problems)
            self._plan, self._registry = plan, registry
        return self._plan
