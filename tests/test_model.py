"""GraphModel: executing the graph, training through the CLI, archives across processes."""

from __future__ import annotations

import json
import subprocess
import sys
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
