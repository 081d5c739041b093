"""Hook specifications: what a neuralgraph plugin may implement.

A plugin is a module (or object) found through the entry-point group ``neuralgraph``; the entry
point's name is the plugin's namespace (``asr.ConvASREncoder``). Every hook receives the
:class:`~neuralgraph.registry.Registry` and returns nothing: it calls the registry's ``add_*``
methods. All implementations are called (there is no first-result-wins hook). Names registered by
two plugins stay reachable through their qualified names; the short name then reports both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from neuralgraph.registry import Registry

hookspec = pluggy.HookspecMarker("neuralgraph")
hookimpl = pluggy.HookimplMarker("neuralgraph")


# --- types -----------------------------------------------------------------------------------


@hookspec
def register_element_types(registry: Registry) -> None:
    """Add ElementType subclasses with ``registry.add_element_type(cls)``."""


# --- graph nodes -----------------------------------------------------------------------------


@hookspec
def register_modules(registry: Registry) -> None:
    """Add NeuralModule classes usable as ``module:`` of a node: ``registry.add_module(cls)``."""


@hookspec
def register_losses(registry: Registry) -> None:
    """Add loss modules (NeuralModules with a LossType output): ``registry.add_loss(cls)``."""


@hookspec
def register_metrics(registry: Registry) -> None:
    """Add metrics (torchmetrics Metrics with ``input_types``): ``registry.add_metric(cls)``."""


# --- data ------------------------------------------------------------------------------------


@hookspec
def register_data_sources(registry: Registry) -> None:
    """Add DataSource classes usable as ``data.module``: ``registry.add_data_source(cls)``."""


# --- training --------------------------------------------------------------------------------


@hookspec
def register_optimizers(registry: Registry) -> None:
    """Add optimizer factories ``f(params, **kwargs)``: ``registry.add_optimizer(name, f)``."""


@hookspec
def register_schedulers(registry: Registry) -> None:
    """Add LR scheduler factories ``f(optimizer, *, max_steps, **kwargs)``: ``add_scheduler``."""


@hookspec
def register_callbacks(registry: Registry) -> None:
    """Add Lightning callbacks for ``neuralgraph train``: ``registry.add_callback(name, f)``.

    ``f(graph)`` is called once per run (in every process of a multi-process run) with the
    checked :class:`~neuralgraph.Graph`, and returns a ``pytorch_lightning.Callback`` for that
    run or None (for example when the graph uses none of the plugin's modules).
    """


# --- command line ----------------------------------------------------------------------------


@hookspec
def register_commands(registry: Registry) -> None:
    """Add CLI subcommands: ``registry.add_command(name, configure, run, help=...)``.

    ``configure(parser)`` adds arguments to an ``argparse`` parser; ``run(args)`` returns an exit
    code. Raise ``neuralgraph.UserError`` for a mistake of the user's (exit 2, no traceback).
    """


# --- pretrained models -----------------------------------------------------------------------


@hookspec
def register_pretrained(registry: Registry) -> None:
    """Add pretrained models to the catalog: ``registry.add_pretrained(entry)``.

    ``entry`` is a :class:`neuralgraph.pretrained.PretrainedEntry` (name, task, sources,
    sha256, size, license, measured figures). ``neuralgraph pretrained list`` runs only this
    hook, so import no torch in it.
    """
