"""GraphModel: executing the graph, training through the CLI, archives across processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import neuralgraph as ng
from tests.conftest import run_cli


@pytest.fixture()
def model(toy_graph: Path) -> ng.GraphModel:
    torch.manual_seed(0)
    return ng.GraphModel(ng.Graph.from_yaml(toy_graph))


class TestForward:
    def test_outputs_keyed_by_node_port(self, model: ng.GraphModel) -> None:
        """forward returns every computed port as 'node.port'."""
        x, y = torch.randn(4, 8), torch.randn(4, 1)
        out = model(x=x, y=y)
        assert set(out) == {"hidden.y", "drop.y", "head.y", "mse.loss"}
        assert out["head.y"].shape == (4, 1)

    def test_inference_skips_unreachable_nodes(self, model: ng.GraphModel) -> None:
        """Without targets, the loss node is simply not reached."""
        out = model.eval()(x=torch.randn(3, 8))
        assert "mse.loss" not in out and out["head.y"].shape == (3, 1)

    def test_train_only_node_skipped_in_eval(self, model: ng.GraphModel) -> None:
        """Outside training a train_only node passes its input through."""
        out = model.eval()(x=torch.randn(3, 8))
        assert out["drop.y"] is out["hidden.y"]
        model.train()
        model.nodes["drop"].drop.p = 0.99
        out = model(x=torch.randn(3, 8))
        assert not torch.equal(out["drop.y"], out["hidden.y"])

    def test_matches_hand_written(self, model: ng.GraphModel) -> None:
        """The graph computes what calling its modules by hand computes."""
        model.eval()
        x = torch.randn(5, 8)
        by_hand = model.nodes["head"](x=model.nodes["hidden"](x=x))
        assert torch.equal(model(x=x)["head.y"], by_hand)

    def test_runtime_typecheck(self, model: ng.GraphModel) -> None:
        """With the runtime typecheck on, a tensor of the wrong size is caught at its port."""
        ng.set_typecheck(True)
        try:
            with pytest.raises(ng.TypecheckError, match="hidden"):
                model(x=torch.randn(2, 7))
        finally:
            ng.set_typecheck(False)

    def test_optimizer_and_scheduler(self, toy_graph: Path) -> None:
        """optim builds the registered optimizer and a per-step scheduler."""
        graph = ng.Graph.from_yaml(toy_graph, [
            "optim={name: novograd, lr: 0.01, sched: {name: CosineAnnealing, warmup_steps: 2,"
            " max_steps: 10}}"])
        conf = ng.GraphModel(graph).configure_optimizers()
        assert type(conf["optimizer"]).__name__ == "Novograd"
        assert conf["lr_scheduler"]["interval"] == "step"


class TestArchive:
    def test_restore_in_fresh_process_gives_identical_outputs(
            self, model: ng.GraphModel, tmp_path: Path) -> None:
        """save_to + restore_from in another process reproduces the outputs exactly."""
        archive = model.save_to(tmp_path / "m.ngm")
        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
        expected = model.eval()(x=x)["head.y"]
        script = (
            "import sys, json, torch, neuralgraph as ng\n"
            "m = ng.GraphModel.restore_from(sys.argv[1])\n"
            "x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))\n"
            "print(json.dumps(m(x=x)['head.y'].tolist()))\n")
        result = subprocess.run([sys.executable, "-c", script, str(archive)],
                                capture_output=True, text=True, check=True)
        restored = torch.tensor(json.loads(result.stdout))
        assert torch.equal(restored, expected)

    def test_save_is_atomic(self, model: ng.GraphModel, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A failure during a save leaves the previous archive intact and no temp file."""
        from neuralgraph import archive as archive_mod

        path = model.save_to(tmp_path / "m.ngm")
        before = path.read_bytes()

        def boom(*args: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(archive_mod, "_add_bytes", boom)
        with pytest.raises(OSError):
            model.save_to(path)
        assert path.read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["m.ngm"]


class TestTrainCommand:
    def test_train_writes_run_folder(self, toy_graph: Path, tmp_path: Path) -> None:
        """`neuralgraph train` lowers the loss and writes events, checkpoints, config, archive."""
        result = run_cli("train", str(toy_graph), "trainer.max_epochs=4",
                         "--exp-dir", str(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        run = tmp_path / "toy_regression" / "version_0"
        assert (run / "toy_regression.ngm").is_file()
        assert (run / "checkpoints" / "last.ckpt").is_file()
        assert (run / "graph.yaml").is_file()
        assert list(run.glob("events.out.tfevents.*"))
        losses = [float(line.split("val_loss ")[1].split()[0])
                  for line in result.stderr.splitlines() if "val_loss" in line]
        assert len(losses) == 4 and losses[-1] < losses[0] / 4
        assert "Traceback" not in result.stderr


class TestExecutionPlan:
    """The public extension API domain models are built on: execution_plan, run, sinks."""

    def test_plan_from_data_ports_lists_nodes_in_order(self, model: ng.GraphModel) -> None:
        """From x and y, eval mode runs hidden, head, mse in order; drop passes through."""
        plan = model.execution_plan(["data.x", "data.y"])
        assert isinstance(plan, ng.ExecutionPlan)
        assert plan.given == frozenset({"data.x", "data.y"}) and plan.training is False
        assert plan.nodes == (
            ng.PlannedNode("hidden", {"x": "data.x"}, ("hidden.y",)),
            ng.PlannedNode("head", {"x": "drop.y"}, ("head.y",)),
            ng.PlannedNode("mse", {"pred": "head.y", "target": "data.y"}, ("mse.loss",)),
        )
        assert plan.passes == {"drop.y": "hidden.y"}
        assert plan.outputs == ("hidden.y", "head.y", "mse.loss")

    def test_training_plan_runs_train_only_nodes(self, model: ng.GraphModel) -> None:
        """In training the train_only node runs and nothing passes through."""
        plan = model.execution_plan(["data.x", "data.y"], training=True)
        assert [n.name for n in plan.nodes] == ["hidden", "drop", "head", "mse"]
        assert plan.passes == {}

    def test_plan_without_targets_leaves_the_loss_out(self, model: ng.GraphModel) -> None:
        """Inference from x alone does not reach the loss."""
        plan = model.execution_plan(["data.x"])
        assert [n.name for n in plan.nodes] == ["hidden", "head"]

    def test_sinks(self, model: ng.GraphModel) -> None:
        """Sinks are the computed keys no planned node reads; a key read through a skipped
        train_only node (hidden.y, through drop.y) is read."""
        assert model.execution_plan(["data.x"]).sinks == ("head.y",)
        assert model.execution_plan(["data.x", "data.y"]).sinks == ("mse.loss",)
        assert model.sinks(["data.x"]) == ["head.y"]

    def test_sub_graph_run_from_an_inner_key(self, model: ng.GraphModel) -> None:
        """Given an inner key, only what follows it runs (hidden does not)."""
        model.eval()
        assert [n.name for n in model.execution_plan(["hidden.y"]).nodes] == ["head"]
        calls: list[str] = []
        hooks = [model.nodes[name].register_forward_hook(
            lambda *_, name=name: calls.append(name)) for name in ("hidden", "head")]
        try:
            h = torch.randn(3, 16)
            env = model.run({"hidden.y": h})
        finally:
            for hook in hooks:
                hook.remove()
        assert calls == ["head"]
        assert env["drop.y"] is h
        assert torch.equal(env["head.y"], model.nodes["head"](x=h))

    def test_run_only_what_outputs_need(self, model: ng.GraphModel) -> None:
        """outputs= plans and runs only what those keys need: no loss for head.y."""
        model.eval()
        plan = model.execution_plan(["data.x", "data.y"], outputs=["head.y"])
        assert [n.name for n in plan.nodes] == ["hidden", "head"]
        x = torch.randn(2, 8)
        env = model.run({"data.x": x, "data.y": torch.randn(2, 1)}, outputs=["head.y"])
        assert "mse.loss" not in env
        assert torch.equal(env["head.y"], model(x=x)["head.y"])

    def test_unreachable_output_is_a_user_error(self, model: ng.GraphModel) -> None:
        """Asking for a key that cannot be computed from what is given says which."""
        with pytest.raises(ng.UserError, match=re.escape("cannot compute ['mse.loss'] from "
                                                         "['data.x'] in eval mode")):
            model.execution_plan(["data.x"], outputs=["mse.loss"])
        with pytest.raises(ng.UserError, match=re.escape("['mse.loss']")):
            model.run({"data.x": torch.randn(2, 8)}, outputs=["mse.loss"])

    def test_plan_is_a_snapshot(self, model: ng.GraphModel) -> None:
        """Changing a returned plan changes nothing that runs."""
        plan = model.execution_plan(["data.x"])
        plan.nodes[0].inputs["x"] = "data.nope"
        plan.passes.clear()
        assert model.execution_plan(["data.x"]).nodes[0].inputs == {"x": "data.x"}
        assert model.eval()(x=torch.randn(2, 8))["head.y"].shape == (2, 1)


class TestDataSourceDeclarations:
    """What DataSource declares for core and domain models, with defaults that say what is
    missing."""

    def test_defaults(self) -> None:
        """No inference ports declared; example_batch and evaluation_split name the source."""

        class Bare(ng.DataSource):
            """No declarations."""

        source = Bare()
        assert source.inference_ports == ()
        with pytest.raises(ng.UserError, match="data source Bare gives no example_batch"):
            source.example_batch()
        with pytest.raises(ng.UserError, match="data source Bare cannot evaluate a file"):
            source.evaluation_split("data.json", batch_size=4)

    def test_export_needs_inference_ports(self, model: ng.GraphModel) -> None:
        """Export from a source that declares no inference ports is a clear UserError."""
        from neuralgraph.export import data_inputs

        with pytest.raises(ng.UserError, match="ToyRegression declares no inference_ports"):
            data_inputs(model)

    def test_dataloader_for_without_evaluation_split(self, model: ng.GraphModel,
                                                     tmp_path: Path) -> None:
        """dataloader_for(path) asks the data source; the toy source cannot read a file."""
        with pytest.raises(ng.UserError, match="data source ToyRegression cannot evaluate"):
            model.dataloader_for(tmp_path / "data.json")

    def test_dataloader_for_with_evaluation_split(self, model: ng.GraphModel, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        """A source that declares evaluation_split gets the graph's split settings (shuffle
        off) and the caller's, and returns the loader's parameters for the path."""
        from ng_toy import ToyRegression

        seen: dict[str, object] = {}

        def evaluation_split(self: ToyRegression, path: str, **params: object) -> dict:
            seen.update(params, path=path)
            return {**params, "n_samples": int(Path(path).read_text())}

        monkeypatch.setattr(ToyRegression, "evaluation_split", evaluation_split)
        (tmp_path / "n.txt").write_text("10")
        loader = model.dataloader_for(tmp_path / "n.txt", batch_size=4)
        assert seen == {"path": str(tmp_path / "n.txt"), "batch_size": 4, "n_samples": 64}
        assert sum(len(batch["x"]) for batch in loader) == 10


class TestEvaluateDetails:
    def test_metric_details_follow_the_figures(self, model: ng.GraphModel,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """A metric's details() are reported after the figures under their own keys; a key
        already taken gets the metric's name in front; other metrics add none."""
        from ng_toy import MeanAbsError

        monkeypatch.setattr(MeanAbsError, "details",
                            lambda self: {"per_row": {"a": 1}, "loss": 0.5}, raising=False)
        results = model.evaluate(model.data_source.dataloader("validation", batch_size=8))
        assert list(results) == ["loss", "mae", "utterances", "per_row", "mae_loss"]
        assert results["per_row"] == {"a": 1} and results["mae_loss"] == 0.5
        assert isinstance(results["mae"], float)


class TestDomainModelDoc:
    """The "Domain models" example of docs/plugins.md works as the text says."""

    def test_example(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Its data source and domain model, untrained: predict, restore, evaluate, export."""
        from neuralgraph.cli import main
        from neuralgraph.export import export

        doc = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
        section = doc.split("\n## Domain models\n", 1)[1].split("\n## ", 1)[0]
        block = re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)[0]
        module = types.ModuleType("plugins_md_domain_models")
        exec(compile(block, "docs/plugins.md (Domain models)", "exec"), module.__dict__)
        ng.get_registry().register_plugin(module, "doc")

        rows = tmp_path / "rows.txt"
        rows.write_text("".join(f"{i} 1 2 3 {i / 10}\n" for i in range(10)))
        graph = ng.Graph.from_string(f"""
name: rows
data: {{module: Rows, params: {{dim: 4}}, validation: {{rows: {rows}, batch_size: 4}}}}
nodes:
  hidden: {{module: Linear, params: {{in_features: 4, out_features: 8}}, inputs: {{x: data.x}}}}
  head: {{module: Linear, params: {{in_features: 8, out_features: 1}}, inputs: {{x: hidden.y}}}}
  mse: {{module: MSE, inputs: {{pred: head.y, target: data.y}}}}
loss: mse.loss
metrics:
  mae: {{module: MeanAbsError, inputs: {{pred: head.y, target: data.y}}}}
""")
        model = module.Regressor(graph)
        assert model.prediction_key() == "head.y"
        x = torch.randn(3, 4)
        expected = model.nodes["head"](x=model.nodes["hidden"](x=x))
        torch.testing.assert_close(model.predict(x), expected)

        archive = model.save_to(tmp_path / "rows.ngm")
        restored = module.Regressor.restore_from(archive)
        torch.testing.assert_close(restored.predict(x), expected)
        code = main(["evaluate", "--model", str(archive), "--data", str(rows), "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert json.loads(out)["utterances"] == 10
        traced = torch.jit.load(str(export(archive, "torchscript")))
        torch.testing.assert_close(traced(x)[0], expected)
