"""The plugin system: every hook, names and conflicts, broken plugins, env vars, a pip install.

In-process tests register plugin objects (modules built here) on a fresh ``Registry``, or put a
crafted ``*.dist-info`` on ``sys.path`` so that ``importlib.metadata`` finds its entry points.
``TestTemplateInstalled`` pip-installs ``examples/plugin_template`` into a new virtual
environment and runs the command line there, as a plugin author would.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

import neuralgraph as ng
from neuralgraph import cli
from neuralgraph.errors import GraphError, UserError
from neuralgraph.info import describe
from neuralgraph.registry import (
    Registry,
    UnknownNameError,
    get_registry,
    load_commands,
    reset_registry,
)
from neuralgraph.train import plugin_callbacks
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "plugin_template"

Hook = Callable[[Registry], None]


def make_plugin(name: str, **hooks: Hook) -> types.ModuleType:
    """A plugin module named ``name`` whose attributes are the given hook implementations."""
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, ng.hookimpl(function))
    return module


class Scale(ng.NeuralModule):
    """Multiplies (B, D) features by ``factor``."""

    def __init__(self, factor: float = 2.0) -> None:
        super().__init__()
        self.factor = factor

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        """``x``: (B, D) features."""
        return {"x": ng.NeuralType(("B", "D"), ng.ChannelType())}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """``y``: (B, D) features."""
        return {"y": ng.NeuralType(("B", "D"), ng.ChannelType())}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, D)."""
        return x * self.factor


class OtherScale(Scale):
    """Another plugin's idea of Scale."""


class SumLoss(ng.NeuralModule):
    """Sum of (B, D) features as a scalar loss."""

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        """``x``: (B, D) features."""
        return {"x": ng.NeuralType(("B", "D"), ng.ChannelType())}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """``loss``: a scalar."""
        return {"loss": ng.NeuralType(elements_type=ng.LossType())}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> scalar."""
        return x.sum()


class MeanValue(ng.NeuralMetric):
    """Mean of every value seen (a ratio of sums)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        """``x``: (B, D) features."""
        return {"x": ng.NeuralType(("B", "D"), ng.ChannelType())}

    def update(self, x: torch.Tensor) -> None:
        """Add a (B, D) batch."""
        self.total += x.sum()
        self.count += x.numel()

    def compute(self) -> torch.Tensor:
        """The mean so far."""
        return self.total / self.count


class Ones(ng.DataSource):
    """Batches of ones: ``x`` (B, D=dim)."""

    def __init__(self, dim: int = 3) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be > 0 (got {dim})")
        self.dim = dim

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """``x``: (B, D=dim) features."""
        return {"x": ng.NeuralType(("B", ng.AxisType("D", self.dim)), ng.ChannelType())}

    def dataloader(self, split: str, batch_size: int = 2,
                   n_samples: int = 4) -> torch.utils.data.DataLoader:
        """``n_samples`` rows of ones in batches of ``batch_size``."""
        data = torch.utils.data.StackDataset(x=torch.ones(n_samples, self.dim))
        return torch.utils.data.DataLoader(data, batch_size=batch_size)


class PitchType(ng.ElementType):
    """A fundamental frequency contour in Hz."""


def halving_sgd(params: Any, *, lr: float = 0.1) -> torch.optim.Optimizer:
    """SGD at half the given learning rate."""
    return torch.optim.SGD(params, lr=lr / 2)


def constant_lr(optimizer: torch.optim.Optimizer, *, max_steps: int,
                factor: float = 1.0) -> torch.optim.lr_scheduler.LRScheduler:
    """The optimizer's learning rate times ``factor`` for all ``max_steps`` steps."""
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=factor, total_iters=max_steps)


class EpochCounter(pl.Callback):
    """Counts the training epochs that end."""

    def __init__(self) -> None:
        self.epochs = 0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs += 1


def count_epochs(graph: ng.Graph) -> EpochCounter | None:
    """An EpochCounter for the graph named every_hook; no callback for other graphs."""
    return EpochCounter() if graph.name == "every_hook" else None


def _configure_hello(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="world")


def _run_hello(args: argparse.Namespace) -> int:
    """Greets NAME."""
    if args.name == "nobody":
        raise UserError("--name must name somebody")
    print(f"hello {args.name}")
    return 0


def _register_scale(registry: Registry) -> None:
    registry.add_module(Scale)


def _register_other_scale(registry: Registry) -> None:
    registry.add_module(OtherScale, name="Scale")


EVERY_HOOK: dict[str, Hook] = {
    "register_element_types": lambda registry: registry.add_element_type(PitchType),
    "register_modules": _register_scale,
    "register_losses": lambda registry: registry.add_loss(SumLoss),
    "register_metrics": lambda registry: registry.add_metric(MeanValue),
    "register_data_sources": lambda registry: registry.add_data_source(Ones),
    "register_optimizers": lambda registry: registry.add_optimizer("halving_sgd", halving_sgd),
    "register_schedulers": lambda registry: registry.add_scheduler("constant_lr", constant_lr),
    "register_callbacks": lambda registry: registry.add_callback("count_epochs", count_epochs),
    "register_commands": lambda registry: registry.add_command(
        "hello", _configure_hello, _run_hello, help="print a greeting"),
}

GRAPH = """\
name: every_hook
data: {module: Ones, params: {dim: 3}, train: {batch_size: 2}}
nodes:
  scale: {module: SCALE, params: {factor: 3.0}, inputs: {x: data.x}}
  total: {module: SumLoss, inputs: {x: scale.y}}
loss: total.loss
metrics:
  mean: {module: MeanValue, inputs: {x: scale.y}}
optim: {name: halving_sgd, lr: 0.2, sched: {name: constant_lr, factor: 0.5}}
"""


@pytest.fixture()
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for plugin modules; what the test imports from it is forgotten."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("NEURALGRAPH_PLUGINS", raising=False)
    reset_registry()
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("ngt_"):
            del sys.modules[name]
    reset_registry()


def write_module(folder: Path, dotted: str, source: str) -> None:
    """Write the module ``dotted`` (packages created as needed) under ``folder``."""
    *packages, last = dotted.split(".")
    path = folder
    for package in packages:
        path = path / package
        path.mkdir(exist_ok=True)
        (path / "__init__.py").touch()
    (path / f"{last}.py").write_text(textwrap.dedent(source))


def write_dist(folder: Path, name: str, version: str, entry_points: dict[str, str],
               extras: tuple[str, ...] = ()) -> None:
    """A minimal installed distribution (``NAME-VERSION.dist-info``) declaring entry points."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Provides-Extra: {extra}" for extra in extras)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    points = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[neuralgraph]\n{points}")


PLUGIN_SOURCE = """\
import neuralgraph as ng

class Thing(ng.NeuralModule):
    '''A thing that does nothing.'''

@ng.hookimpl
def register_modules(registry):
    registry.add_module(Thing)
"""


class TestEveryHook:
    @pytest.fixture()
    def registry(self) -> Registry:
        """A fresh registry holding a plugin that implements every hook."""
        registry = Registry()
        registry.register_plugin(make_plugin("every", **EVERY_HOOK), "every")
        assert registry.plugins["every"].available, registry.plugins["every"].error
        return registry

    def test_each_hook_adds_its_kind(self, registry: Registry) -> None:
        """Each of the nine hooks adds one entry of its kind under the plugin's name."""
        assert registry.by_plugin("every") == {
            "module": ["Scale"], "loss": ["SumLoss"], "metric": ["MeanValue"],
            "data_source": ["Ones"], "element_type": ["PitchType"],
            "optimizer": ["halving_sgd"], "scheduler": ["constant_lr"],
            "callback": ["count_epochs"], "command": ["hello"],
        }

    def test_register_element_types(self, registry: Registry) -> None:
        """register_element_types: the class is found by short and qualified name."""
        assert registry.get("element_type", "PitchType").obj is PitchType
        assert registry.get("element_type", "every.PitchType").obj is PitchType

    @pytest.mark.parametrize("module", ["Scale", "every.Scale"])
    def test_graph_uses_every_kind(self, registry: Registry, module: str) -> None:
        """register_modules, register_losses, register_metrics, register_data_sources,
        register_optimizers and register_schedulers all feed one checked graph."""
        plan = ng.Graph.from_string(GRAPH.replace("SCALE", module)).plan(registry)
        assert plan.nodes["scale"].cls is Scale and plan.nodes["total"].cls is SumLoss
        assert plan.metrics["mean"].cls is MeanValue and plan.data.cls is Ones
        assert plan.optim["name"] == "halving_sgd"

    def test_factories_build(self, registry: Registry) -> None:
        """Registered optimizer and scheduler factories build what the trainer steps."""
        weight = torch.nn.Parameter(torch.ones(1))
        optimizer = registry.get("optimizer", "halving_sgd").obj([weight], lr=0.2)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
        scheduler = registry.get("scheduler", "constant_lr").obj(optimizer, max_steps=5,
                                                                 factor=0.5)
        assert scheduler.get_last_lr() == [pytest.approx(0.05)]

    def test_register_commands(self, registry: Registry) -> None:
        """register_commands stores (configure, run) and the help text."""
        entry = registry.get("command", "hello")
        assert entry.obj == (_configure_hello, _run_hello) and entry.help == "print a greeting"

    def test_register_callbacks(self, registry: Registry) -> None:
        """register_callbacks: the factory decides per graph; train gets its Callback."""
        assert registry.get("callback", "every.count_epochs").obj is count_epochs
        graph = ng.Graph.from_string(GRAPH.replace("SCALE", "Scale"))
        [callback] = plugin_callbacks(graph, registry)
        assert isinstance(callback, EpochCounter)
        other = ng.Graph.from_string(GRAPH.replace("SCALE", "Scale").replace(
            "name: every_hook", "name: other"))
        assert plugin_callbacks(other, registry) == []

    def test_hooks_run_in_a_fixed_order(self) -> None:
        """Element types are registered first and commands last, whatever the module order."""
        order: list[str] = []
        hooks = {name: (lambda registry, name=name: order.append(name))
                 for name in reversed(list(EVERY_HOOK))}
        Registry().register_plugin(make_plugin("order", **hooks), "order")
        assert order == list(EVERY_HOOK)


class TestCallbacks:
    """register_callbacks: factories called by `neuralgraph train`, their errors named."""

    @staticmethod
    def _registry(factory: Callable[[ng.Graph], Any]) -> Registry:
        registry = Registry()
        registry.register_plugin(make_plugin("ngt_cb", register_callbacks=lambda registry:
                                             registry.add_callback("watch", factory)), "ngt_cb")
        assert registry.plugins["ngt_cb"].available
        return registry

    @staticmethod
    def _graph() -> ng.Graph:
        return ng.Graph.from_string(GRAPH.replace("SCALE", "Scale"))

    def test_factory_receives_the_graph(self) -> None:
        """Each factory is called with the run's graph; a None result adds no callback."""
        seen: list[str] = []
        registry = self._registry(lambda graph: seen.append(graph.name))
        assert plugin_callbacks(self._graph(), registry) == []
        assert seen == ["every_hook"]

    def test_raising_factory_names_the_plugin(self) -> None:
        """A factory that raises is a UserError naming the plugin, the callback and the graph."""
        def broken(graph: ng.Graph) -> None:
            raise RuntimeError("kaput")

        with pytest.raises(UserError, match=r"plugin 'ngt_cb' \(callback 'watch'\) failed for "
                                            r"the graph 'every_hook': RuntimeError: kaput"):
            plugin_callbacks(self._graph(), self._registry(broken))

    def test_user_error_keeps_its_message(self) -> None:
        """A UserError a factory raises on purpose keeps its words, prefixed by the plugin."""
        def refuse(graph: ng.Graph) -> None:
            raise UserError("set WATCH_DIR first")

        with pytest.raises(UserError, match=r"^plugin 'ngt_cb' \(callback 'watch'\): set "
                                            r"WATCH_DIR first$"):
            plugin_callbacks(self._graph(), self._registry(refuse))

    def test_non_callback_names_the_plugin(self) -> None:
        """A factory returning something else than a Callback is refused, naming the plugin."""
        with pytest.raises(UserError, match=r"plugin 'ngt_cb' \(callback 'watch'\): the factory "
                                            r"must return a pytorch_lightning\.Callback or None "
                                            r"\(got 3 that is a int\)"):
            plugin_callbacks(self._graph(), self._registry(lambda graph: 3))

    def test_plugins_lists_callbacks(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`neuralgraph plugins -v` counts and names the toy plugin's callback."""
        assert cli.main(["plugins", "-v"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^ng_toy\s+ng_toy\s+.*, 1 callback$", out, re.MULTILINE), out
        assert re.search(r"^\s+callback: call_recorder$", out, re.MULTILINE), out

    def test_callback_runs_during_train(self, tmp_path: Path) -> None:
        """`neuralgraph train` runs the toy plugin's callback: two epochs end, then training."""
        record = tmp_path / "calls.jsonl"
        result = run_cli("train", str(ROOT / "tests" / "toy" / "regression.yaml"),
                         "trainer.max_epochs=2", "--exp-dir", str(tmp_path / "exp"),
                         cwd=tmp_path,
                         env={"NG_TOY_CALLBACK_FILE": str(record), "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        calls = [json.loads(line) for line in record.read_text().splitlines()]
        assert [(c["event"], c["step"]) for c in calls] == [
            ("on_train_epoch_end", 16), ("on_train_epoch_end", 32), ("on_train_end", 32)]
        assert {c["graph"] for c in calls} == {"toy_regression"}

    def test_failing_factory_stops_train_with_exit_2(self, tmp_path: Path, plugin_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
        """A factory that raises makes `neuralgraph train` exit 2 with one line naming the
        plugin, before any training step."""
        write_module(plugin_dir, "ngt_badcb", textwrap.dedent("""\
            import neuralgraph as ng

            def explode(graph):
                raise KeyError("no such thing")

            @ng.hookimpl
            def register_callbacks(registry):
                registry.add_callback("explode", explode)
            """))
        monkeypatch.setenv("NEURALGRAPH_PLUGINS", "ng_toy,ngt_badcb")
        reset_registry()
        code = cli.main(["train", str(ROOT / "tests" / "toy" / "regression.yaml"),
                         "trainer.max_epochs=1", "--exp-dir", str(tmp_path / "exp")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert ("error: plugin 'ngt_badcb' (callback 'explode') failed for the graph "
                "'toy_regression': KeyError: 'no such thing'") in err
        assert "Traceback" not in err


class TestNames:
    @pytest.fixture()
    def registry(self) -> Registry:
        """Two plugins, 'alpha' and 'beta', that both register a module named Scale."""
        registry = Registry()
        registry.register_plugin(make_plugin("alpha", register_modules=_register_scale), "alpha")
        registry.register_plugin(
            make_plugin("beta", register_modules=_register_other_scale), "beta")
        return registry

    def test_short_name_conflict_names_both(self, registry: Registry) -> None:
        """A short name two plugins registered is an error naming both qualified names."""
        with pytest.raises(UnknownNameError, match="several plugins") as caught:
            registry.get("module", "Scale")
        assert "'alpha.Scale'" in str(caught.value) and "'beta.Scale'" in str(caught.value)

    def test_qualified_names_work(self, registry: Registry) -> None:
        """Each plugin's object stays reachable through its qualified name."""
        assert registry.get("module", "alpha.Scale").obj is Scale
        assert registry.get("module", "beta.Scale").obj is OtherScale

    def test_conflicts_listed(self, registry: Registry) -> None:
        """Registry.conflicts maps the short name to both qualified names."""
        assert registry.conflicts() == {"Scale": ["alpha.Scale", "beta.Scale"]}

    def test_graph_reports_conflict_at_its_line(self, registry: Registry) -> None:
        """A graph using the ambiguous short name fails with file:line and both names."""
        graph = ng.Graph.from_string(GRAPH.replace("SCALE", "Scale"), source="g.yaml")
        with pytest.raises(GraphError, match=r"g\.yaml:4:.*'alpha\.Scale' and 'beta\.Scale'"):
            graph.plan(registry)

    def test_unknown_name_suggests(self, registry: Registry) -> None:
        """A misspelled name gets a 'did you mean' with the close registered names."""
        with pytest.raises(UnknownNameError, match="did you mean"):
            registry.get("module", "Scal")

    def test_same_plugin_twice_is_refused(self, registry: Registry) -> None:
        """Two plugins with one plugin name are refused, naming both modules."""
        with pytest.raises(UserError, match="two plugins are named 'alpha'"):
            registry.register_plugin(make_plugin("alpha2"), "alpha")

    def test_a_plugin_registering_a_name_twice_is_unavailable(self) -> None:
        """A plugin adding one name twice is recorded as unavailable, having added nothing."""
        def twice(registry: Registry) -> None:
            registry.add_module(Scale)
            registry.add_module(OtherScale, name="Scale")

        registry = Registry()
        registry.register_plugin(make_plugin("twice", register_modules=twice), "twice")
        assert not registry.plugins["twice"].available
        assert "registers the module 'Scale' twice" in registry.plugins["twice"].error
        assert registry.by_plugin("twice") == {}


class TestBrokenPlugins:
    def test_misspelled_hook_fails_at_registration(self) -> None:
        """A hook the spec does not know (register_modulez) is refused with the hook's name."""
        registry = Registry()
        plugin = make_plugin("typo", register_modulez=_register_scale)
        with pytest.raises(UserError, match=r"unknown hook.*register_modulez"):
            registry.register_plugin(plugin, "typo")
        assert "typo" not in registry.plugins
        registry.register_plugin(make_plugin("good", register_modules=_register_scale), "good")
        assert registry.get("module", "Scale").plugin == "good"

    def test_wrong_hook_argument_fails_at_registration(self) -> None:
        """A hook whose argument is not `registry` is refused with a UserError naming it."""
        registry = Registry()
        plugin = make_plugin("badarg", register_modules=lambda reg: reg.add_module(Scale))
        with pytest.raises(UserError, match=r"badarg.*register_modules"):
            registry.register_plugin(plugin, "badarg")
        registry.register_plugin(make_plugin("good", register_modules=_register_scale), "good")
        assert registry.get("module", "Scale").plugin == "good"

    def test_import_error_in_a_hook(self) -> None:
        """A hook failing on a missing dependency makes the plugin unavailable, with the fix,
        removes what it had added, and leaves other plugins alone."""
        def missing(registry: Registry) -> None:
            raise ModuleNotFoundError("No module named 'ngt_missing_dep'", name="ngt_missing_dep")

        registry = Registry()
        plugin = make_plugin("half", register_modules=_register_scale, register_metrics=missing)
        registry.register_plugin(plugin, "half")
        registry.register_plugin(make_plugin("good", register_losses=EVERY_HOOK["register_losses"]),
                                 "good")
        info = registry.plugins["half"]
        assert not info.available and info.fix == "pip install ngt_missing_dep"
        assert registry.by_plugin("half") == {}
        assert registry.get("loss", "SumLoss").plugin == "good"
        with pytest.raises(UnknownNameError, match="plugin 'half' is unavailable: pip install"):
            registry.get("module", "half.Scale")

    def test_missing_extra_from_entry_point(self, plugin_dir: Path) -> None:
        """An entry point whose import fails is unavailable with `pip install 'dist[extra]'`;
        the other installed plugins still load."""
        write_module(plugin_dir, "ngt_fine.plugin", PLUGIN_SOURCE)
        write_module(plugin_dir, "ngt_broken.plugin", "import ngt_missing_dep\n")
        write_dist(plugin_dir, "ngt-fine", "1.0", {"fine": "ngt_fine.plugin"})
        write_dist(plugin_dir, "ngt-broken", "2.0", {"broken": "ngt_broken.plugin"},
                   extras=("broken",))
        registry = get_registry()
        broken = registry.plugins["broken"]
        assert not broken.available and "ngt_missing_dep" in broken.error
        assert broken.fix == "pip install 'ngt-broken[broken]'"
        assert (broken.distribution, broken.version) == ("ngt-broken", "2.0")
        assert registry.plugins["fine"].available and registry.plugins["core"].available
        assert registry.get("module", "fine.Thing").obj.__doc__ == "A thing that does nothing."

    def test_missing_extra_inside_a_hook(self, plugin_dir: Path) -> None:
        """A plugin importing its dependencies inside hooks (as asr does) also gets the extra."""
        write_module(plugin_dir, "ngt_lazy.plugin", PLUGIN_SOURCE.replace(
            "    registry.add_module(Thing)", "    import ngt_missing_dep\n"
            "    registry.add_module(Thing)"))
        write_dist(plugin_dir, "ngt-lazy", "1.0", {"lazy": "ngt_lazy.plugin"}, extras=("lazy",))
        info = get_registry().plugins["lazy"]
        assert not info.available and "ngt_missing_dep" in info.error
        assert info.fix == "pip install 'ngt-lazy[lazy]'"

    def test_missing_dependency_without_extra(self, plugin_dir: Path) -> None:
        """Without an extra of the entry point's name, the fix installs the missing module."""
        write_module(plugin_dir, "ngt_plain.plugin", "import ngt_missing_dep.sub\n")
        write_dist(plugin_dir, "ngt-plain", "0.3", {"plain": "ngt_plain.plugin"})
        assert get_registry().plugins["plain"].fix == "pip install ngt_missing_dep"

    def test_unavailable_plugin_in_cli_and_graph(self, plugin_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
        """`neuralgraph plugins` shows UNAVAILABLE and the fix; a graph naming the plugin's
        module says which plugin is missing and how to install it."""
        write_module(plugin_dir, "ngt_broken2.plugin", "import ngt_missing_dep\n")
        write_dist(plugin_dir, "ngt-broken2", "2.0", {"broken2": "ngt_broken2.plugin"},
                   extras=("broken2",))
        assert cli.main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"broken2\s+ngt-broken2 2\.0\s+UNAVAILABLE: ModuleNotFoundError", out)
        assert "fix: pip install 'ngt-broken2[broken2]'" in out
        graph = ng.Graph.from_string(GRAPH.replace("SCALE", "broken2.Scale"), source="g.yaml")
        with pytest.raises(GraphError, match="plugin 'broken2' is unavailable: pip install"):
            graph.check()


class TestEnvironment:
    def test_neuralgraph_plugins_loads_modules(self, plugin_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """NEURALGRAPH_PLUGINS imports each listed module as a plugin named by its last part."""
        write_module(plugin_dir, "ngt_envone", PLUGIN_SOURCE)
        write_module(plugin_dir, "ngt_pkg.ngt_envtwo", PLUGIN_SOURCE.replace("Thing", "Other"))
        monkeypatch.setenv("NEURALGRAPH_PLUGINS", "ngt_envone, ngt_pkg.ngt_envtwo")
        reset_registry()
        registry = get_registry()
        assert registry.plugins["ngt_envone"].module == "ngt_envone"
        assert registry.plugins["ngt_envtwo"].module == "ngt_pkg.ngt_envtwo"
        assert registry.get("module", "ngt_envtwo.Other").plugin == "ngt_envtwo"
        assert registry.plugins["core"].available

    def test_neuralgraph_plugins_bad_path_exits_2(self, plugin_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A module in NEURALGRAPH_PLUGINS that cannot be imported is a user error (exit 2)."""
        monkeypatch.setenv("NEURALGRAPH_PLUGINS", "ngt_does_not_exist")
        reset_registry()
        assert cli.main(["plugins"]) == 2
        err = capsys.readouterr().err
        assert "NEURALGRAPH_PLUGINS names 'ngt_does_not_exist'" in err and "Traceback" not in err

    def test_neuralgraph_trace_prints_hook_calls(self, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
        """NEURALGRAPH_TRACE=1 writes every hook call (register_modules...) to stderr."""
        import neuralgraph.registry as registry_module

        monkeypatch.setenv("NEURALGRAPH_TRACE", "1")
        monkeypatch.setattr(registry_module, "_PM", None)  # the manager reads the env once
        Registry().register_plugin(make_plugin("traced", register_modules=_register_scale),
                                   "traced")
        err = capsys.readouterr().err
        assert "register_modules [hook]" in err and "finish register_modules" in err
        assert "register_commands [hook]" in err


class TestCommandLine:
    @pytest.fixture()
    def env_plugins(self, plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """Plugins ngt_alpha and ngt_beta (both register Scale; alpha adds `hello`)."""
        source = textwrap.dedent("""\
            import neuralgraph as ng
            from tests.test_plugins import EVERY_HOOK, OtherScale, Scale

            @ng.hookimpl
            def register_modules(registry):
                registry.add_module(CLASS, name="Scale")
            """)
        write_module(plugin_dir, "ngt_alpha", source.replace("CLASS", "Scale") + textwrap.dedent(
            """
            register_commands = ng.hookimpl(EVERY_HOOK["register_commands"])
            """))
        write_module(plugin_dir, "ngt_beta", source.replace("CLASS", "OtherScale"))
        monkeypatch.setenv("NEURALGRAPH_PLUGINS", "ngt_alpha,ngt_beta")
        reset_registry()
        return plugin_dir

    def test_plugins_lists_core(self, plugin_dir: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
        """`neuralgraph plugins` shows the built-in core plugin, its distribution and counts;
        -v lists every name."""
        assert cli.main(["plugins"]) == 0
        out = capsys.readouterr().out
        summary = r"\d+ element types, \d+ optimizers, \d+ schedulers"
        assert re.search(rf"^core\s+neuralgraph \S+\s+{summary}$", out, re.MULTILINE), out
        assert cli.main(["plugins", "-v"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^\s+optimizer: .*\badam\b", out, re.MULTILINE)
        assert re.search(r"^\s+scheduler: .*\bCosineAnnealing\b", out, re.MULTILINE)

    def test_plugins_notes_conflicts(self, env_plugins: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """`neuralgraph plugins` notes a short name registered twice, with both names."""
        assert cli.main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^ngt_alpha\s+ngt_alpha\s+1 module, 1 command$", out, re.MULTILINE)
        assert "note: 'Scale' is registered by ngt_alpha.Scale and ngt_beta.Scale" in out

    def test_info_ambiguous_and_qualified(self, env_plugins: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
        """`neuralgraph info Scale` exits 2 naming both; the qualified name shows the module."""
        assert cli.main(["info", "Scale"]) == 2
        err = capsys.readouterr().err
        assert "'ngt_alpha.Scale' and 'ngt_beta.Scale'" in err
        assert cli.main(["info", "ngt_beta.Scale", "factor=3"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("ngt_beta.Scale — module from plugin 'ngt_beta'")
        assert "Another plugin's idea of Scale." in out
        assert "factor: float = 2.0" in out and "x: (B,D) ChannelType" in out

    def test_plugin_command_runs(self, env_plugins: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
        """A command from register_commands is listed, has --help, runs; a UserError exits 2."""
        assert cli.main(["plugins", "-v"]) == 0
        assert "command: hello" in capsys.readouterr().out
        assert cli.main(["hello", "--help"]) == 0
        assert "print a greeting" in capsys.readouterr().out
        assert cli.main(["helo"]) == 2
        assert re.search(r"invalid choice: 'helo'.*'hello'", capsys.readouterr().err)
        assert cli.main(["hello", "--name", "plugin"]) == 0
        assert capsys.readouterr().out == "hello plugin\n"
        assert cli.main(["hello", "--name", "nobody"]) == 2
        assert "error: --name must name somebody" in capsys.readouterr().err

    def test_command_hidden_by_core_is_reported(self, plugin_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
        """A plugin command named like a core one cannot run; `plugins` and the plugin's other
        commands say so instead of dropping it silently."""
        write_module(plugin_dir, "ngt_gamma", textwrap.dedent("""\
            import neuralgraph as ng
            from tests.test_plugins import _configure_hello, _run_hello

            @ng.hookimpl
            def register_commands(registry):
                registry.add_command("check", _configure_hello, _run_hello, help="shadowed")
                registry.add_command("greet", _configure_hello, _run_hello, help="greets")
            """))
        monkeypatch.setenv("NEURALGRAPH_PLUGINS", "ngt_gamma")
        reset_registry()
        warning = ("warning: plugin 'ngt_gamma' registers the command 'check', which the core "
                   "command 'check' hides; the plugin must rename it")
        assert cli.main(["plugins"]) == 0
        assert warning in capsys.readouterr().out
        assert cli.main(["greet", "--name", "plugin"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "hello plugin\n" and warning in captured.err
        assert cli.main(["check", "--help"]) == 0  # the core command
        assert "shadowed" not in capsys.readouterr().out

    @pytest.fixture()
    def twin_commands(self, plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """Plugins ngt_one and ngt_two (NEURALGRAPH_PLUGINS) both register `hello`; ngt_two
        also registers `greet`."""
        source = textwrap.dedent("""\
            import neuralgraph as ng
            from tests.test_plugins import _configure_hello, _run_hello

            @ng.hookimpl
            def register_commands(registry):
                registry.add_command("hello", _configure_hello, _run_hello, help="NAME greets")
            """)
        write_module(plugin_dir, "ngt_one", source.replace("NAME", "one"))
        write_module(plugin_dir, "ngt_two", source.replace("NAME", "two") + (
            '    registry.add_command("greet", _configure_hello, _run_hello, help="greets")\n'))
        monkeypatch.setenv("NEURALGRAPH_PLUGINS", "ngt_one,ngt_two")
        reset_registry()
        return plugin_dir

    def test_same_command_from_two_plugins(self, twin_commands: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """A command two plugins register exits 2 naming both and the fixes (no traceback);
        their qualified names run, and the plugins' other commands and core keep working."""
        message = ("plugins 'ngt_one' and 'ngt_two' both register the command 'hello', so "
                   "neither runs as 'neuralgraph hello'; run 'neuralgraph ngt_one.hello' or "
                   "'neuralgraph ngt_two.hello' instead. To fix it, uninstall one plugin "
                   "(remove 'ngt_one' or 'ngt_two' from NEURALGRAPH_PLUGINS) or have one plugin "
                   "rename its command")
        for args in (["hello", "--name", "x"], ["hello", "--help"]):
            assert cli.main(args) == 2
            captured = capsys.readouterr()
            assert captured.err == f"error: {message}\n" and captured.out == ""
        assert cli.main(["greet", "--name", "x"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "hello x\n" and captured.err == f"warning: {message}\n"
        assert cli.main(["ngt_two.hello", "--name", "y"]) == 0
        assert capsys.readouterr().out == "hello y\n"
        assert cli.main(["info", "adam"]) == 0
        assert capsys.readouterr().err == ""  # a core command loads no plugin command
        assert cli.main(["plugins"]) == 0
        out = capsys.readouterr().out
        assert f"warning: {message}" in out and "note: 'hello'" not in out

    def test_same_command_from_two_installed_plugins(self, plugin_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
        """Between two pip-installed plugins, the fix names each `pip uninstall`; `--help`
        lists both qualified commands (calling no configure) and warns."""
        for dist, name in (("ngt-uno", "uno"), ("ngt-dos", "dos")):
            write_module(plugin_dir, f"ngt_{name}.plugin", PLUGIN_SOURCE + textwrap.dedent(f"""
                CONFIGURED = []

                def configure(parser):
                    CONFIGURED.append("{name}")

                def run(args):
                    print("{name}")
                    return 0

                @ng.hookimpl
                def register_commands(registry):
                    registry.add_command("hello", configure, run, help="{name} says hello")
                """))
            write_dist(plugin_dir, dist, "1.0", {name: f"ngt_{name}.plugin"})
        assert cli.main(["--help"]) == 0
        captured = capsys.readouterr()
        assert re.search(r"^ +uno\.hello\s+uno says hello \[uno\]$", captured.out, re.MULTILINE)
        assert re.search(r"^ +dos\.hello\s+dos says hello \[dos\]$", captured.out, re.MULTILINE)
        assert ("(pip uninstall ngt-dos or pip uninstall ngt-uno) or have one plugin rename "
                "its command") in captured.err
        configured = [sys.modules[f"ngt_{n}.plugin"].CONFIGURED for n in ("uno", "dos")]
        assert configured == [[], []]
        assert cli.main(["uno.hello", "--help"]) == 0
        assert "uno says hello" in capsys.readouterr().out
        assert configured == [["uno"], []]
        assert cli.main(["dos.hello"]) == 0
        assert capsys.readouterr().out == "dos\n"

    def test_load_commands_calls_only_register_commands(self, plugin_dir: Path) -> None:
        """load_commands (what --help uses) registers the plugins' commands and nothing else."""
        write_module(plugin_dir, "ngt_both.plugin", PLUGIN_SOURCE + textwrap.dedent("""
            from tests.test_plugins import EVERY_HOOK

            register_commands = ng.hookimpl(EVERY_HOOK["register_commands"])
            """))
        write_dist(plugin_dir, "ngt-both", "1.0", {"both": "ngt_both.plugin"})
        registry = load_commands(env_plugins=False)
        assert registry.by_plugin("both") == {"command": ["hello"]}
        assert registry.by_plugin("core") == {} and registry.plugins["core"].available
        assert get_registry().by_plugin("both") == {"module": ["Thing"], "command": ["hello"]}

    def test_info_describes_every_kind(self) -> None:
        """`info` shows docstring and parameters of optimizers, schedulers and element types."""
        registry = Registry()
        registry.register_plugin(make_plugin("every", **EVERY_HOOK), "every")
        import neuralgraph.info as info_module

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(info_module, "get_registry", lambda: registry)
            text = describe("halving_sgd")
            assert "SGD at half the given learning rate." in text
            assert text.endswith("parameters:\n  lr: float = 0.1")
            text = describe("constant_lr")
            assert text.endswith("parameters:\n  factor: float = 1.0")
            assert "A fundamental frequency contour in Hz." in describe("PitchType")
            assert "(B,D=3) ChannelType" in describe("Ones")

    def test_info_never_shows_a_base_class_docstring(self) -> None:
        """A registered class without its own docstring shows "(no docstring)" in `info`."""
        class Undocumented(ng.NeuralModule):
            pass

        registry = Registry()
        registry.register_plugin(
            make_plugin("bare", register_modules=lambda registry: registry.add_module(
                Undocumented)), "bare")
        import neuralgraph.info as info_module

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(info_module, "get_registry", lambda: registry)
            text = describe("Undocumented")
        assert "\n\n(no docstring)\n" in text and "typed input and output ports" not in text


# One process in the venv runs the CLI commands and the template's tests, printing JSON: torch
# and Lightning are imported once, which keeps TestTemplateInstalled well under a minute.
VENV_SESSION = """\
import contextlib, io, json, sys
import pytest
import ng_gain
from neuralgraph.cli import main

template, result = sys.argv[1], {"ng_gain_file": ng_gain.__file__}
for key, args in (("plugins", ["plugins"]), ("info", ["info", "Gain"]),
                  ("check", ["check", template + "/graphs/gain.yaml"])):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    result[key] = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = pytest.main(["-q", "-p", "no:cacheprovider", template + "/tests"])
result["pytest"] = {"code": int(code), "out": out.getvalue(), "err": ""}
print(json.dumps(result))
"""


def _venv_env(venv: Path) -> dict[str, str]:
    """The environment of a user of ``venv``: no test plugins, no inherited paths."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "NEURALGRAPH_PLUGINS", "NEURALGRAPH_TRACE", "VIRTUAL_ENV",
                        "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               OMP_NUM_THREADS="1")
    return env


def _make_venv(root: Path) -> Path:
    """A new venv at ``root/venv`` whose ``.pth`` adds this interpreter's site-packages."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60)
    parent = sysconfig.get_paths()["purelib"]
    Path(site.stdout.strip(), "_neuralgraph_parent.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n")
    return venv


class TestTemplateInstalled:
    """examples/plugin_template pip-installed into a fresh venv that reuses this one's packages.

    The venv gets a ``.pth`` running ``site.addsitedir`` on this interpreter's site-packages, so
    torch and the editable neuralgraph are importable without reinstalling them; the plugin is
    installed from a copy of the template (not editable) with ``pip install --no-deps``.
    """

    @pytest.fixture(scope="class")
    def session(self, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
        """Outputs of `plugins`, `info Gain`, `check` and the template's pytest in the venv."""
        root = tmp_path_factory.mktemp("gain_venv")
        template = root / "plugin_template"
        shutil.copytree(TEMPLATE, template,
                        ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
        venv = _make_venv(root)
        python = str(venv / "bin" / "python")
        installed = subprocess.run(
            [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
             "--disable-pip-version-check", "-q", str(template)],
            capture_output=True, text=True, env=_venv_env(venv), cwd=root, timeout=120)
        assert installed.returncode == 0, installed.stderr
        ran = subprocess.run([python, "-c", VENV_SESSION, str(template)], capture_output=True,
                             text=True, env=_venv_env(venv), cwd=root, timeout=300)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        result = json.loads(ran.stdout.strip().splitlines()[-1])
        result["venv"], result["template"] = str(venv), str(template)
        return result

    @staticmethod
    def _ok(session: dict[str, Any], key: str) -> str:
        step = session[key]
        assert step["code"] == 0, step["out"] + step["err"]
        return step["out"]

    def test_plugins_lists_gain(self, session: dict[str, Any]) -> None:
        """`neuralgraph plugins` lists gain with its distribution and what it adds."""
        out = self._ok(session, "plugins")
        assert re.search(r"^gain\s+ng-gain 0\.1\.0\s+1 module, 1 loss, 1 data source$", out,
                         re.MULTILINE), out
        assert re.search(r"^core\s+neuralgraph ", out, re.MULTILINE)

    def test_info_shows_gain(self, session: dict[str, Any]) -> None:
        """`neuralgraph info Gain` shows the docstring, the parameters and the typed ports."""
        out = self._ok(session, "info")
        assert out.startswith("gain.Gain — module from plugin 'gain'")
        assert "Multiplies a waveform by a constant." in out
        assert "gain: float = 1.0" in out and "learnable: bool = False" in out
        assert "inputs:\n  audio_signal: (B,T) AudioSignal\n" in out
        assert "outputs:\n  audio_signal: (B,T) AudioSignal" in out

    def test_check_accepts_short_and_qualified_names(self, session: dict[str, Any]) -> None:
        """`neuralgraph check` passes the template graph using `Gain` and `gain.Gain`."""
        assert "ok — 3 nodes" in self._ok(session, "check")
        text = (Path(session["template"]) / "graphs" / "gain.yaml").read_text()
        assert "module: Gain " in text and "module: gain.Gain " in text

    def test_installed_copy_is_imported(self, session: dict[str, Any]) -> None:
        """The plugin is imported from the venv's site-packages, not from the template."""
        assert session["ng_gain_file"].startswith(session["venv"])

    def test_template_tests_pass(self, session: dict[str, Any]) -> None:
        """The template's own tests pass in the venv, none of them skipped."""
        out = self._ok(session, "pytest")
        assert "passed" in out and "skipped" not in out, out
