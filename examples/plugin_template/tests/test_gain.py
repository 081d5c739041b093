"""Tests of the gain plugin: its modules, its data source, its registration, a graph using it.

Run after installing the plugin (``pip install -e .``) with ``pytest`` from this folder. The
registration and graph tests need the installed entry point and are skipped without it.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import torch
from ng_gain import plugin
from ng_gain.data import SineWaves
from ng_gain.plugin import Gain, WaveformMSE

import neuralgraph as ng

GRAPH = Path(__file__).resolve().parent.parent / "graphs" / "gain.yaml"
INSTALLED = any(ep.name == "gain" and ep.value == "ng_gain.plugin"
                for ep in metadata.entry_points(group="neuralgraph"))
needs_install = pytest.mark.skipif(not INSTALLED, reason="install the plugin: pip install -e .")


class TestGain:
    def test_scales_the_waveform(self) -> None:
        """Gain multiplies every sample by its factor and keeps the (B, T) shape."""
        x = torch.randn(3, 50)
        y = Gain(gain=2.5)(audio_signal=x)
        assert y.shape == (3, 50)
        torch.testing.assert_close(y, 2.5 * x)

    def test_learnable_gain_gets_a_gradient(self) -> None:
        """With learnable=True the factor is a parameter that receives a gradient."""
        module = Gain(gain=1.0, learnable=True)
        assert [p.numel() for p in module.parameters()] == [1]
        module(audio_signal=torch.ones(2, 4)).sum().backward()
        assert module.gain.grad is not None and float(module.gain.grad) == 8.0

    def test_rejects_a_non_finite_gain(self) -> None:
        """A NaN or infinite gain is refused with a ValueError that says what must hold."""
        with pytest.raises(ValueError, match="finite"):
            Gain(gain=float("nan"))

    def test_ports_on_the_meta_device(self) -> None:
        """Port types are readable from an instance built on the meta device (the checker's)."""
        with torch.device("meta"):
            module = Gain(gain=3.0, learnable=True)
        wave = ng.NeuralType(("B", "T"), ng.AudioSignal())
        assert module.input_types == {"audio_signal": wave}
        assert module.output_types == {"audio_signal": wave}

    def test_loss_is_a_scalar(self) -> None:
        """WaveformMSE returns a scalar that is zero for identical waveforms."""
        x = torch.randn(2, 10)
        assert WaveformMSE()(pred=x, target=x).shape == ()
        assert float(WaveformMSE()(pred=x, target=x)) == 0.0


class TestSineWaves:
    def test_batches_match_the_declared_ports(self) -> None:
        """Batches are dicts keyed by output port, (B, T) with T = duration * sample_rate."""
        source = SineWaves(sample_rate=8000, duration=0.01, target_gain=0.5)
        batch = next(iter(source.dataloader("train", batch_size=4, n_samples=8)))
        assert set(batch) == set(source.output_types)
        assert batch["audio_signal"].shape == (4, 80)
        torch.testing.assert_close(batch["target_signal"], 0.5 * batch["audio_signal"])

    def test_splits_are_different_draws(self) -> None:
        """Train and validation hold different waves; the same split is reproducible."""
        source = SineWaves(duration=0.01)

        def first(split: str) -> torch.Tensor:
            return next(iter(source.dataloader(split, batch_size=2, n_samples=2)))["audio_signal"]

        torch.testing.assert_close(first("train"), first("train"))
        assert not torch.equal(first("train"), first("validation"))

    @pytest.mark.parametrize("params", [{"sample_rate": 0}, {"duration": 0.0},
                                        {"target_gain": float("inf")}])
    def test_rejects_bad_parameters(self, params: dict[str, float]) -> None:
        """Bad constructor arguments raise ValueError."""
        with pytest.raises(ValueError, match="must"):
            SineWaves(**params)


class TestRegistration:
    def test_hooks_register_everything(self) -> None:
        """The plugin's hooks add Gain, WaveformMSE and SineWaves under the plugin's name."""
        registry = ng.Registry()
        registry.register_plugin(plugin, "gain")
        assert registry.plugins["gain"].available
        assert registry.by_plugin("gain") == {"module": ["Gain"], "loss": ["WaveformMSE"],
                                              "data_source": ["SineWaves"]}
        assert registry.get("module", "gain.Gain").obj is Gain

    @needs_install
    def test_entry_point_is_found(self) -> None:
        """The installed entry point puts the plugin in neuralgraph's process-wide registry."""
        registry = ng.get_registry()
        assert registry.plugins["gain"].distribution == "ng-gain"
        assert registry.get("module", "Gain").obj is Gain


@needs_install
class TestGraph:
    def test_graph_checks(self) -> None:
        """The example graph, with `module: Gain` and `module: gain.Gain`, passes the check."""
        graph = ng.Graph.from_yaml(GRAPH)
        graph.check()
        assert graph.plan().nodes["learned"].cls is Gain

    def test_graph_learns_the_gain(self) -> None:
        """Two epochs of SGD on the example graph learn the factor 0.25 (0.5 target / 2)."""
        torch.manual_seed(0)
        model = ng.GraphModel(ng.Graph.from_yaml(GRAPH))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        model.train()
        for _ in range(2):
            for batch in model.dataloader("train"):
                loss = model(**batch)["mse.loss"]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        assert abs(model.nodes["learned"].gain.item() - 0.25) < 1e-3
