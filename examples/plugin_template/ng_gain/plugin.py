"""The ``gain`` plugin: what it adds to neuralgraph, and the hooks that add it.

neuralgraph finds this module through the entry point declared in ``pyproject.toml``::

    [project.entry-points.neuralgraph]
    gain = "ng_gain.plugin"

and calls every ``register_*`` hook implemented here with its registry. The entry point's name
(``gain``) is the namespace: ``gain.Gain`` is this plugin's ``Gain`` whatever else is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

import neuralgraph as ng
from neuralgraph.validators import boolean, check, finite, number
from ng_gain.data import SineWaves

if TYPE_CHECKING:
    from neuralgraph import Registry

__all__ = ["Gain", "WaveformMSE", "register_data_sources", "register_losses",
           "register_modules"]


class Gain(ng.NeuralModule):
    """Multiplies a waveform by a constant.

    ``gain`` is the factor; with ``learnable: true`` it is a trained parameter that starts at
    ``gain``. Ports: ``audio_signal`` (B, T) AudioSignal in, the scaled (B, T) AudioSignal out.
    """

    def __init__(self, gain: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        # a bad value raises ng.ParameterError ("'gain' must be a finite number (got nan)"),
        # which `neuralgraph check` reports at the `gain:` line of the graph file
        check("gain", gain, number, finite)
        if check("learnable", learnable, boolean):
            self.gain: torch.Tensor | float = nn.Parameter(torch.tensor(float(gain)))
        else:
            self.gain = float(gain)

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        """``audio_signal``: (B, T) waveform at any sample rate."""
        return {"audio_signal": ng.NeuralType(("B", "T"), ng.AudioSignal())}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """``audio_signal``: (B, T) waveform, ``gain`` times the input."""
        return {"audio_signal": ng.NeuralType(("B", "T"), ng.AudioSignal())}

    def forward(self, audio_signal: torch.Tensor) -> torch.Tensor:
        """Scale ``audio_signal`` (B, T) by the gain; returns (B, T)."""
        return audio_signal * self.gain


class WaveformMSE(ng.NeuralModule):
    """Mean squared error between two waveforms of the same shape: a scalar LossType."""

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        """``pred`` and ``target``: (B, T) waveforms."""
        return {"pred": ng.NeuralType(("B", "T"), ng.AudioSignal()),
                "target": ng.NeuralType(("B", "T"), ng.AudioSignal())}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """``loss``: a scalar."""
        return {"loss": ng.NeuralType(elements_type=ng.LossType())}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean of ``(pred - target) ** 2`` over (B, T); returns a scalar."""
        return torch.nn.functional.mse_loss(pred, target)


# --- hooks: each receives neuralgraph's Registry and calls its add_* methods -----------------


@ng.hookimpl
def register_modules(registry: Registry) -> None:
    """Graph nodes: ``module: Gain`` (or ``gain.Gain``) in a graph file."""
    registry.add_module(Gain)


@ng.hookimpl
def register_losses(registry: Registry) -> None:
    """Loss nodes: ``module: WaveformMSE``; the graph's ``loss:`` names its ``loss`` port."""
    registry.add_loss(WaveformMSE)


@ng.hookimpl
def register_data_sources(registry: Registry) -> None:
    """Data sources: ``data.module: SineWaves``."""
    registry.add_data_source(SineWaves)
