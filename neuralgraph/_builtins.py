"""The ``core`` plugin: element types, optimizers and LR schedulers, registered like any
third-party plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuralgraph.hookspecs import hookimpl

if TYPE_CHECKING:
    from neuralgraph.registry import Registry


@hookimpl
def register_element_types(registry: Registry) -> None:
    from neuralgraph import types

    for name in sorted(types.__all__):
        obj = getattr(types, name)
        if isinstance(obj, type) and issubclass(obj, types.ElementType):
            registry.add_element_type(obj)


@hookimpl
def register_optimizers(registry: Registry) -> None:
    from neuralgraph import optim

    for name, factory in optim.OPTIMIZERS.items():
        registry.add_optimizer(name, factory)


@hookimpl
def register_schedulers(registry: Registry) -> None:
    from neuralgraph import optim

    for name, factory in optim.SCHEDULERS.items():
        registry.add_scheduler(name, factory)
