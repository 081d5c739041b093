"""Base classes for graph nodes and data sources, and the runtime ``typecheck`` for debugging.

A :class:`NeuralModule` is an ``nn.Module`` that declares typed ports. ``input_types`` and
``output_types`` may depend on constructor arguments; they are read by the static checker from an
instance built on the ``meta`` device, so they must not depend on weights' values.
``forward`` takes the input ports as keyword arguments and returns one tensor (one output port),
a tuple in ``output_types`` order, or a dict keyed by port name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from neuralgraph.errors import UserError
from neuralgraph.types import NeuralType

__all__ = [
    "DataSource",
    "NeuralModule",
    "TypecheckError",
    "is_typecheck_enabled",
    "set_typecheck",
    "typecheck",
]


class NeuralModule(nn.Module):
    """An ``nn.Module`` with typed input and output ports.

    Class attributes a subclass may set:

    * ``artifacts``: names of constructor parameters that hold file paths; the files are packed
      into ``.ngm`` archives and the parameter is pointed at the extracted copy on restore.
    * ``unsupported_precisions``: Lightning precisions this module cannot run under, each with
      the reason: ``{"bf16-mixed": "reason"}`` on every accelerator, or
      ``{"bf16-mixed": {"cpu": "reason"}}`` only on the accelerators named ("cpu", "cuda",
      "mps"; "gpu" means "cuda"). Precisions are Lightning's names ("16-mixed", "bf16-mixed",
      "16-true", "bf16-true", "64-true"). ``check`` reports them before training, for the
      accelerator the trainer will use ("auto" is "cuda" when a GPU is visible, else "cpu";
      "16-mixed" on cpu counts as "bf16-mixed", which Lightning runs instead).
    * ``exportable``: False for a node that ``neuralgraph export`` leaves outside the exported
      model (feature extraction, as NeMo does); the export then starts at its outputs.
    """

    artifacts: ClassVar[tuple[str, ...]] = ()
    unsupported_precisions: ClassVar[Mapping[str, str | Mapping[str, str]]] = {}
    exportable: ClassVar[bool] = True

    @property
    def input_types(self) -> dict[str, NeuralType]:
        """Input ports by name (keyword arguments of ``forward``)."""
        return {}

    @property
    def output_types(self) -> dict[str, NeuralType]:
        """Output ports by name, in the order ``forward`` returns them."""
        return {}


class DataSource:
    """A registered data source: its output ports feed the graph (``data.PORT`` in YAML).

    The constructor takes the graph's ``data.params`` and must not touch files (it runs during the
    static check). ``dataloader`` builds the loader of one split from that split's YAML keys
    (``data.train``, ``data.validation``...); its keyword parameters are what the checker accepts.
    Batches are dicts keyed by output port name.

    What core and domain models read besides, each with a default that says clearly what is
    missing (a subclass overrides what it supports):

    * ``inference_ports``: the output ports an inference or export run is fed (for audio:
      ``("audio_signal", "audio_length")``, not the transcripts). Default: none declared, and
      ``neuralgraph export`` says so.
    * :meth:`example_batch`: inputs to trace an export with. Default: a UserError.
    * :meth:`evaluation_split`: how a file or folder named by the user (``neuralgraph evaluate
      --data PATH``) becomes the parameters of a split. Default: a UserError.
    """

    artifacts: ClassVar[tuple[str, ...]] = ()
    inference_ports: ClassVar[tuple[str, ...]] = ()

    @property
    def output_types(self) -> dict[str, NeuralType]:
        """Output ports by name."""
        return {}

    def dataloader(self, split: str, **split_params: Any) -> torch.utils.data.DataLoader:
        """The loader for ``split`` ("train", "validation", "test")."""
        raise NotImplementedError

    def validate(self, split: str, **split_params: Any) -> list[str]:
        """Problems found in a split's data before training (missing files...), one line each."""
        return []

    def example_batch(self, batch: int = 2) -> dict[str, torch.Tensor]:
        """A small batch ``{port: tensor}`` with the leading axis ``batch``, covering at least
        the ``inference_ports``, to trace an export with (no file read).

        Raises:
            UserError: by default: this data source gives no example batch.
        """
        raise UserError(f"data source {type(self).__name__} gives no example_batch() to trace "
                        "an export with; its class must define one")

    def evaluation_split(self, path: str, **split_params: Any) -> dict[str, Any]:
        """The keyword parameters of ``dataloader`` and ``validate`` for the data in ``path``.

        ``path`` is a file or folder named by the user (``neuralgraph evaluate --data PATH``,
        ``GraphModel.dataloader_for``); ``split_params`` are the graph's settings of the split
        evaluated with the user's extra ones (``batch_size``...). An audio source returns them
        with ``manifest_filepath=path``.

        Raises:
            UserError: by default: this data source cannot read a file named by the user.
        """
        raise UserError(f"data source {type(self).__name__} cannot evaluate a file; it declares "
                        "no evaluation_split() that says how a path becomes its data")


# ---------------------------------------------------------------------------------------------
# runtime typecheck (debugging aid; off by default and free when off)
# ---------------------------------------------------------------------------------------------

_ENABLED = os.environ.get("NEURALGRAPH_TYPECHECK", "").lower() in {"1", "true", "yes", "on"}


class TypecheckError(TypeError):
    """A tensor does not fit its port's declared type (rank or a fixed axis size)."""

    def __init__(self, where: str, port: str, expected: NeuralType, found: str) -> None:
        self.where, self.port, self.expected, self.found = where, port, expected, found
        super().__init__(f"{where}: port '{port}' expects {expected}, got {found}")


def set_typecheck(enabled: bool) -> None:
    """Switch the runtime typecheck on or off for the whole process."""
    global _ENABLED
    _ENABLED = bool(enabled)


def is_typecheck_enabled() -> bool:
    """Whether runtime typechecking is on (``NEURALGRAPH_TYPECHECK=1`` or ``set_typecheck``)."""
    return _ENABLED


def check_value(where: str, port: str, declared: NeuralType, value: object) -> None:
    """Check one runtime value against its declared type: rank and fixed sizes of a tensor."""
    if declared.axes is None or not isinstance(value, torch.Tensor):
        return
    if value.dim() != len(declared.axes):
        raise TypecheckError(where, port, declared, f"a tensor of shape {tuple(value.shape)}")
    for i, axis in enumerate(declared.axes):
        if axis.size is not None and value.shape[i] != axis.size:
            raise TypecheckError(where, port, declared, f"a tensor of shape {tuple(value.shape)}")


def iter_outputs(module: NeuralModule, result: object) -> Iterator[tuple[str, Any]]:
    """Pair a forward result with the module's output port names."""
    names = list(module.output_types)
    if isinstance(result, Mapping):
        yield from result.items()
    elif isinstance(result, tuple):
        if len(result) != len(names):
            raise TypeError(
                f"{type(module).__name__}.forward returned {len(result)} values but declares "
                f"{len(names)} output ports {names}"
            )
        yield from zip(names, result)
    else:
        if len(names) != 1:
            raise TypeError(
                f"{type(module).__name__}.forward returned one value but declares "
                f"{len(names)} output ports {names}"
            )
        yield names[0], result


F = TypeVar("F", bound=Callable[..., Any])


def typecheck(forward: F) -> F:
    """Decorate a ``forward`` to check keyword inputs and outputs against the declared ports.

    Only active while :func:`is_typecheck_enabled`; otherwise it is one flag test per call.
    """

    @functools.wraps(forward)
    def wrapper(self: NeuralModule, *args: Any, **kwargs: Any) -> Any:
        if not _ENABLED:
            return forward(self, *args, **kwargs)
        where = type(self).__name__
        if args:
            raise TypeError(f"{where}.forward takes keyword arguments only when typechecked")
        declared = self.input_types
        for name, value in kwargs.items():
            if name not in declared:
                raise TypeError(f"{where}.forward got an unknown port '{name}'")
            check_value(where, name, declared[name], value)
        result = forward(self, **kwargs)
        outputs = self.output_types
        for name, value in iter_outputs(self, result):
            check_value(where, name, outputs[name], value)
        return result

    return wrapper  # type: ignore[return-value]
