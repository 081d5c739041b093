"""The plugin registry: pluggy finds plugins through the ``neuralgraph`` entry-point group.

Built-in pieces (optimizers, schedulers) are a plugin like any other (``core``), declared in
neuralgraph's own ``pyproject.toml``. Extra plugin modules can be named in the environment variable
``NEURALGRAPH_PLUGINS`` (comma-separated import paths), as ``PYTEST_PLUGINS`` does for pytest;
``NEURALGRAPH_TRACE=1`` prints every hook call.

``load_commands()`` is the light load that ``neuralgraph --help`` uses: it imports each
entry-point module and calls nothing but its ``register_commands`` hook, so that the command list
costs no torch import (the plugins' other hooks import what their classes need).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import attrs
import pluggy

from neuralgraph import hookspecs
from neuralgraph.errors import UserError

__all__ = ["Entry", "PluginInfo", "Registry", "UnknownNameError", "get_catalog", "get_registry",
           "load_commands", "reset_registry"]

KINDS = ("module", "loss", "metric", "data_source", "element_type", "optimizer", "scheduler",
         "callback", "command", "pretrained_model")
NODE_KINDS = ("module", "loss")  # what `nodes.X.module` may name

ENTRY_POINT_GROUP = "neuralgraph"


@attrs.frozen
class Entry:
    """One registered thing: its kind, short name, owning plugin and the object itself."""

    kind: str
    name: str
    plugin: str
    obj: Any
    help: str = ""

    @property
    def qualified(self) -> str:
        return f"{self.plugin}.{self.name}"


@attrs.define
class PluginInfo:
    """A plugin as found: its entry point, distribution, version and whether it loaded."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    fix: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None


class UnknownNameError(UserError):
    """A name that no plugin registered (with suggestions) or that two plugins registered."""


class Registry:
    """Everything plugins contributed, looked up by short or qualified name (``asr.X``)."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._short: dict[str, dict[str, list[Entry]]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        self._current: str = "user"

    # --- adding (called from plugins' hooks) -------------------------------------------------

    def add_module(self, cls: type, name: str | None = None) -> None:
        """Register a NeuralModule class as a graph node."""
        self._add("module", name or cls.__name__, cls)

    def add_loss(self, cls: type, name: str | None = None) -> None:
        """Register a loss module (a NeuralModule whose output is a LossType scalar)."""
        self._add("loss", name or cls.__name__, cls)

    def add_metric(self, cls: type, name: str | None = None) -> None:
        """Register a metric class (torchmetrics ``Metric`` with ``input_types``)."""
        self._add("metric", name or cls.__name__, cls)

    def add_data_source(self, cls: type, name: str | None = None) -> None:
        """Register a DataSource class."""
        self._add("data_source", name or cls.__name__, cls)

    def add_element_type(self, cls: type, name: str | None = None) -> None:
        """Register an ElementType subclass (shown by ``neuralgraph info``)."""
        self._add("element_type", name or cls.__name__, cls)

    def add_optimizer(self, name: str, factory: Callable[..., Any]) -> None:
        """Register ``factory(params, **kwargs) -> torch.optim.Optimizer`` under ``name``."""
        self._add("optimizer", name, factory)

    def add_scheduler(self, name: str, factory: Callable[..., Any]) -> None:
        """Register ``factory(optimizer, *, max_steps, **kwargs) -> LRScheduler``."""
        self._add("scheduler", name, factory)

    def add_callback(self, name: str, factory: Callable[[Any], Any]) -> None:
        """Register ``factory(graph) -> pytorch_lightning.Callback | None`` for ``train``."""
        self._add("callback", name, factory)

    def add_command(
        self,
        name: str,
        configure: Callable[[Any], None],
        run: Callable[[Any], int],
        help: str = "",
    ) -> None:
        """Register a CLI subcommand ``neuralgraph NAME``."""
        self._add("command", name, (configure, run), help=help)

    def add_pretrained(self, entry: Any) -> None:
        """Register a :class:`neuralgraph.pretrained.PretrainedEntry` under its name."""
        from neuralgraph.pretrained import PretrainedEntry

        if not isinstance(entry, PretrainedEntry):
            raise TypeError(f"add_pretrained takes a neuralgraph.pretrained.PretrainedEntry "
                            f"(got {type(entry).__name__})")
        self._add("pretrained_model", entry.name, entry)

    def _add(self, kind: str, name: str, obj: Any, help: str = "") -> None:
        entry = Entry(kind, name, self._current, obj, help)
        table = self._entries[kind]
        if entry.qualified in table:
            raise UserError(
                f"plugin '{self._current}' registers the {kind} '{name}' twice"
            )
        table[entry.qualified] = entry
        self._short[kind].setdefault(name, []).append(entry)

    # --- lookup ------------------------------------------------------------------------------

    def get(self, kinds: str | Iterable[str], name: str) -> Entry:
        """Find ``name`` (short or ``plugin.Name``) among ``kinds``; raise with suggestions."""
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        found: list[Entry] = []
        for kind in kinds:
            if name in self._entries[kind]:
                return self._entries[kind][name]
            found.extend(self._short[kind].get(name, []))
        if len(found) == 1:
            return found[0]
        label = _kind_label(kinds)
        if len(found) > 1:
            both = " and ".join(f"'{e.qualified}'" for e in found)
            raise UnknownNameError(
                f"{label} '{name}' is registered by several plugins: {both}; "
                "write the qualified name"
            )
        raise UnknownNameError(f"unknown {label} '{name}'{self.suggest(kinds, name)}")

    def suggest(self, kinds: Iterable[str], name: str) -> str:
        """A ``"; did you mean 'X'?"`` suffix, or a hint about unavailable plugins."""
        candidates: list[str] = []
        for kind in kinds:
            candidates.extend(self._short[kind])
            candidates.extend(self._entries[kind])
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
        if not close:
            lowered = {c.lower(): c for c in candidates}
            close = [lowered[m] for m in difflib.get_close_matches(name.lower(), lowered, n=3)]
        close = [c for c in close if c.rpartition(".")[2] not in close or "." not in c]
        if close:
            return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        prefix = name.split(".", 1)[0] if "." in name else None
        missing = [p for p in self.plugins.values() if not p.available]
        if prefix and prefix in self.plugins and not self.plugins[prefix].available:
            return f"; plugin '{prefix}' is unavailable: {self.plugins[prefix].fix}"
        if missing:
            hints = ", ".join(f"'{p.name}' ({p.fix})" for p in missing)
            return f"; unavailable plugins may provide it: {hints}"
        return ""

    def entries(self, kind: str) -> list[Entry]:
        """All entries of one kind, sorted by qualified name."""
        return sorted(self._entries[kind].values(), key=lambda e: e.qualified)

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin contributed: kind -> sorted short names."""
        result: dict[str, list[str]] = {}
        for kind, table in self._entries.items():
            names = sorted(e.name for e in table.values() if e.plugin == plugin)
            if names:
                result[kind] = names
        return result

    def conflicts(self) -> dict[str, list[str]]:
        """Short names registered by more than one plugin: name -> qualified names."""
        result: dict[str, list[str]] = {}
        for table in self._short.values():
            for name, entries in table.items():
                if len(entries) > 1:
                    result[name] = [e.qualified for e in entries]
        return result

    # --- plugin loading ----------------------------------------------------------------------

    def register_plugin(self, plugin: object, name: str, info: PluginInfo | None = None,
                        fix: Callable[[ImportError], str] | None = None,
                        hooks: Iterable[str] | None = None) -> None:
        """Run ``plugin``'s hook implementations, recording what it adds under ``name``.

        ``fix(exc)`` words the ``pip install`` for an ImportError raised by a hook; ``hooks``
        names the hooks to call (default: all, in their fixed order).
        """
        pm = _plugin_manager()
        if name in self.plugins and self.plugins[name].available:
            raise UserError(f"two plugins are named '{name}': {self.plugins[name].module} "
                            f"and {getattr(plugin, '__name__', plugin)!r}")
        key = f"{name}:{id(self)}"
        try:
            pm.register(plugin, name=key)
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if pm.get_plugin(key) is not None:
                pm.unregister(name=key)
            raise UserError(f"plugin '{name}' has an invalid hook: {exc}") from None
        self.plugins[name] = info or PluginInfo(name, getattr(plugin, "__name__", repr(plugin)))
        self._current = name
        try:
            for hook_name in _HOOK_ORDER if hooks is None else hooks:
                caller = pm.subset_hook_caller(
                    hook_name,
                    remove_plugins=[p for p in pm.get_plugins() if p is not plugin],
                )
                caller(registry=self)
        except Exception as exc:  # a broken plugin must not break the others: record it
            self._forget(name)
            info = self.plugins[name]
            info.error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, ImportError) and info.fix is None:
                info.fix = (fix(exc) if fix is not None
                            else f"pip install {(exc.name or str(exc)).split('.')[0]}")
        finally:
            self._current = "user"
            pm.unregister(name=key)

    def _forget(self, plugin: str) -> None:
        """Remove everything ``plugin`` registered (it failed half-way)."""
        for kind in KINDS:
            for qualified in [q for q, e in self._entries[kind].items() if e.plugin == plugin]:
                entry = self._entries[kind].pop(qualified)
                self._short[kind][entry.name].remove(entry)
                if not self._short[kind][entry.name]:
                    del self._short[kind][entry.name]


_HOOK_ORDER = (
    "register_element_types",
    "register_modules",
    "register_losses",
    "register_metrics",
    "register_data_sources",
    "register_optimizers",
    "register_schedulers",
    "register_callbacks",
    "register_commands",
    "register_pretrained",
)


def _kind_label(kinds: tuple[str, ...]) -> str:
    labels = {
        "module": "module",
        "loss": "module",
        "metric": "metric",
        "data_source": "data source",
        "element_type": "element type",
        "optimizer": "optimizer",
        "scheduler": "scheduler",
        "callback": "callback",
        "command": "command",
        "pretrained_model": "pretrained model",
    }
    return "/".join(dict.fromkeys(labels[k] for k in kinds))


_PM: pluggy.PluginManager | None = None


def _plugin_manager() -> pluggy.PluginManager:
    global _PM
    if _PM is None:
        _PM = pluggy.PluginManager(ENTRY_POINT_GROUP)
        _PM.add_hookspecs(hookspecs)
        if os.environ.get("NEURALGRAPH_TRACE"):
            _PM.trace.root.setwriter(lambda text: sys.stderr.write(text))
            _PM.enable_tracing()
    return _PM


def _fix_for(ep: metadata.EntryPoint, exc: BaseException) -> str:
    """The exact ``pip install`` that provides what an entry point failed to import."""
    dist = ep.dist
    missing = getattr(exc, "name", None) or str(exc)
    if dist is not None:
        extras = dist.metadata.get_all("Provides-Extra") or []
        if ep.name in extras:
            return f"pip install '{dist.metadata['Name']}[{ep.name}]'"
    return f"pip install {missing.split('.')[0]}"


def _load(registry: Registry, hooks: Iterable[str] | None = None,
          env_plugins: bool = True) -> Registry:
    """Fill ``registry`` from the entry points, then (``env_plugins``) NEURALGRAPH_PLUGINS."""
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        meta = ep.dist.metadata if ep.dist is not None else None  # parsed once: it is slow
        info = PluginInfo(
            ep.name,
            ep.value,
            meta["Name"] if meta is not None else None,
            meta["Version"] if meta is not None else None,
        )
        try:
            plugin = ep.load()
        except ImportError as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            info.fix = _fix_for(ep, exc)
            registry.plugins[ep.name] = info
            continue
        except Exception as exc:  # a broken plugin must not break every command
            info.error = f"{type(exc).__name__}: {exc}"
            registry.plugins[ep.name] = info
            continue
        registry.register_plugin(plugin, ep.name, info, fix=functools.partial(_fix_for, ep),
                                 hooks=hooks)
    if not env_plugins:
        return registry
    for path in filter(None, os.environ.get("NEURALGRAPH_PLUGINS", "").split(",")):
        path = path.strip()
        try:
            plugin = importlib.import_module(path)
        except ImportError as exc:
            raise UserError(f"NEURALGRAPH_PLUGINS names '{path}', which cannot be imported: "
                            f"{exc}") from None
        name = path.rsplit(".", 1)[-1]
        registry.register_plugin(plugin, name, PluginInfo(name, path), hooks=hooks)
    return registry


_REGISTRY: Registry | None = None
_CATALOG: Registry | None = None
_LOCK = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, filled from entry points on first use."""
    global _REGISTRY
    with _LOCK:
        if _REGISTRY is None:
            _REGISTRY = _load(Registry())
        return _REGISTRY


def load_commands(env_plugins: bool = True) -> Registry:
    """A new registry holding only the plugins' commands (and every plugin's info).

    Each plugin module is imported and only its ``register_commands`` hook is called, so that
    listing or parsing commands imports no more than the plugins' modules and their command
    modules. ``env_plugins=False`` leaves out the NEURALGRAPH_PLUGINS modules (which may import
    anything at the top: ``neuralgraph --help`` does not import them).
    """
    return _load(Registry(), hooks=("register_commands",), env_plugins=env_plugins)


def get_catalog() -> Registry:
    """The registry to look pretrained models up in: the process-wide registry when it is
    loaded, else (once) a registry of only the plugins' ``register_pretrained`` hooks, so that
    ``neuralgraph pretrained list`` imports no torch."""
    global _CATALOG
    with _LOCK:
        if _REGISTRY is not None:
            return _REGISTRY
        if _CATALOG is None:
            _CATALOG = _load(Registry(), hooks=("register_pretrained",))
        return _CATALOG


def reset_registry() -> None:
    """Forget the loaded registry (tests; after installing a plugin in-process)."""
    global _REGISTRY, _CATALOG
    with _LOCK:
        _REGISTRY = _CATALOG = None
