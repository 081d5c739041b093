"""Distributed training with Lightning's DDP on CPU (gloo): two processes from the CLI, two
torchrun "nodes" on 127.0.0.1, rank-0-only writes, agreeing weights, metrics reduced as ratios
of sums over the whole validation set."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import attrs
import pytest
import torch
import yaml

from tests.conftest import TOY, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Lightning is imported inside the tests: the metric test's spawned workers import this module.

AGREE = "parameters agree on all 2 ranks (digest "


def toy_graph(folder: Path) -> Path:
    """The toy regression graph with the Trainer keys a distributed run overrides, and a metric
    counting validation examples. Validation: 64 examples in batches of 32 (one per rank)."""
    config = yaml.safe_load((TOY / "regression.yaml").read_text())
    config["trainer"].update(strategy="auto", num_nodes=1)
    config["metrics"]["count"] = {"module": "ExampleCount", "inputs": {"target": "data.y"}}
    path = folder / "graph.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """The processes below ``pid``, deepest first (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))

    def below(node: int) -> list[int]:
        return [d for child in children.get(node, []) for d in (*below(child), child)]

    return below(pid)


def validation_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " validation: " in line]


def printed_digest(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith(AGREE)]
    return line[len(AGREE):].rstrip(")")


def restored(archive: Path) -> torch.nn.Module:
    from neuralgraph.model import GraphModel

    return GraphModel.restore_from(archive)


def digest(module: torch.nn.Module) -> str:
    from neuralgraph.callbacks import parameter_digest

    return parameter_digest(module)


@attrs.frozen
class Run:
    """A finished training run: its experiment folder and the processes' stderr."""

    exp: Path
    stderr: str

    @property
    def runs(self) -> list[Path]:
        return sorted((self.exp / "toy_regression").iterdir())

    @property
    def archive(self) -> Path:
        return self.exp / "toy_regression" / "version_0" / "toy_regression.ngm"


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`neuralgraph train GRAPH trainer.strategy=ddp trainer.devices=2 trainer.accelerator=cpu`."""
    work = tmp_path_factory.mktemp("ddp")
    result = run_cli("train", str(toy_graph(work)), "trainer.strategy=ddp", "trainer.devices=2",
                     "trainer.accelerator=cpu", "--exp-dir", str(work / "exp"), cwd=work,
                     env={"OMP_NUM_THREADS": "1"}, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return Run(work / "exp", result.stderr)


class TestDdpCli:
    def test_two_processes_share_the_data(self, ddp_run: Run) -> None:
        """Two gloo processes train; each takes half of the 256 examples, so an epoch is 8
        steps of 16, and the validation count is 64 (no example seen twice)."""
        assert "distributed_backend=gloo" in ddp_run.stderr
        assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in ddp_run.stderr
        last = validation_lines(ddp_run.stderr)[-1]
        assert last.startswith("epoch 2 step 24 validation:") and "val_count 64" in last

    def test_ranks_end_with_identical_weights(self, ddp_run: Run) -> None:
        """Rank 0 reports that both ranks' parameters hash alike, and the archive holds them."""
        assert printed_digest(ddp_run.stderr) == digest(restored(ddp_run.archive))

    def test_only_rank_zero_writes(self, ddp_run: Run) -> None:
        """One run folder with one event file; the archive, the validation lines and the
        agreement line are each printed once."""
        assert [p.name for p in ddp_run.runs] == ["version_0"]
        folder = ddp_run.runs[0]
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert (folder / "graph.yaml").is_file()
        assert (folder / "checkpoints" / "last.ckpt").is_file()
        assert ddp_run.stderr.count("saved ") == 1
        assert len(validation_lines(ddp_run.stderr)) == 3
        assert ddp_run.stderr.count(AGREE) == 1

    def test_metric_is_the_whole_validation_set(self, ddp_run: Run) -> None:
        """The logged val_mae (a ratio of sums reduced across ranks) equals the single-process
        value over all 64 examples, not rank 0's half."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(ddp_run.runs[0]))
        events.Reload()
        logged = {tag: events.Scalars(tag)[-1].value for tag in ("val_mae", "val_loss")}
        model = restored(ddp_run.archive)
        whole = model.evaluate(model.dataloader("validation"))
        assert logged["val_mae"] == pytest.approx(whole["mae"], rel=1e-5)
        assert logged["val_loss"] == pytest.approx(whole["loss"], rel=1e-5)
        assert abs(_rank0_half_mae(model) - whole["mae"]) > 1e-3 * whole["mae"]


def _rank0_half_mae(model: torch.nn.Module) -> float:
    """MAE over the examples DistributedSampler gives rank 0 of 2 (indices 0, 2, 4...)."""
    loader = model.dataloader("validation")
    sampler = torch.utils.data.DistributedSampler(loader.dataset, num_replicas=2, rank=0,
                                                  shuffle=False)
    shard = torch.utils.data.DataLoader(loader.dataset, batch_size=64, sampler=sampler)
    return model.evaluate(shard)["mae"]


class TestTorchrunNodes:
    def test_two_nodes(self, tmp_path: Path) -> None:
        """Two torchrun invocations (--nnodes 2, node ranks 0 and 1, the second node slower to
        start) train one run: rank 0 alone writes and prints, and the ranks agree."""
        graph, exp, port = toy_graph(tmp_path), tmp_path / "exp", free_port()
        train = [sys.executable, "-m", "neuralgraph.cli", "train", str(graph),
                 "trainer.strategy=ddp", "trainer.devices=1", "trainer.num_nodes=2",
                 "--exp-dir", str(exp)]
        # Output goes to files (a pipe nobody reads can stall a process) and Python's
        # faulthandler is on: should a node hang, SIGABRT makes every Python process in it
        # print its threads' stacks into its log, and the test shows them.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
        procs, logs = [], [tmp_path / f"node{node}.log" for node in (0, 1)]
        for (node, delay), log in zip(((0, 0), (1, 3)), logs):
            command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                       "--node-rank", str(node), "--nproc-per-node", "1", "--master-addr",
                       "127.0.0.1", "--master-port", str(port), "--no-python", "bash", "-c",
                       f"sleep {delay}; exec {shlex.join(train)}"]
            with log.open("w") as out:
                procs.append(subprocess.Popen(command, cwd=tmp_path, stdout=out,
                                              stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and any(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        hung = [node for node, proc in enumerate(procs) if proc.poll() is None]
        if hung:  # the workers first, then the torchrun agents
            tree = [pid for proc in procs for pid in descendants(proc.pid)] + \
                [proc.pid for proc in procs]
            for sig in (signal.SIGABRT, signal.SIGKILL):
                for pid in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                time.sleep(5)
            for proc in procs:
                proc.wait()
        node0, node1 = (log.read_text() for log in logs)
        assert not hung, f"node(s) {hung} still running after 180 s\n--- node 0:\n" \
            f"{node0[-6000:]}\n--- node 1:\n{node1[-6000:]}"
        for proc, text in zip(procs, (node0, node1)):
            assert proc.returncode == 0, text[-4000:]
        assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in node1
        assert [p.name for p in (exp / "toy_regression").iterdir()] == ["version_0"]
        archive = exp / "toy_regression" / "version_0" / "toy_regression.ngm"
        assert printed_digest(node0) == digest(restored(archive))
        assert len(validation_lines(node0)) == 3 and "val_count 64" in node0
        assert not validation_lines(node1) and "saved " not in node1 and AGREE not in node1


class TestRunFolder:
    @staticmethod
    def _trainer(rank0: Path, zero: bool) -> types.SimpleNamespace:
        strategy = types.SimpleNamespace(broadcast=lambda obj: str(rank0))
        return types.SimpleNamespace(strategy=strategy, is_global_zero=zero)

    def test_other_ranks_adopt_rank_zero_folder_and_write_nothing(self, tmp_path: Path) -> None:
        """A non-zero rank takes rank 0's folder and creates nothing."""
        from neuralgraph.callbacks import RunFolder

        callback = RunFolder(tmp_path / "mine", {"graph.yaml": "x"})
        callback.setup(self._trainer(tmp_path / "rank0", zero=False), None, "fit")  # type: ignore
        assert callback.directory == tmp_path / "rank0"
        assert list(tmp_path.iterdir()) == []

    def test_rank_zero_writes_the_files(self, tmp_path: Path) -> None:
        """Rank 0 creates the folder and writes the files there."""
        from neuralgraph.callbacks import RunFolder

        callback = RunFolder(tmp_path / "run", {"graph.yaml": "name: x\n"})
        callback.setup(self._trainer(tmp_path / "run", zero=True), None, "fit")  # type: ignore
        assert (tmp_path / "run" / "graph.yaml").read_text() == "name: x\n"


class TestAgreement:
    def test_digest_sees_one_changed_weight(self) -> None:
        """Equal parameters hash alike; one changed element (or dtype) changes the digest."""
        from neuralgraph.callbacks import parameter_digest

        first = torch.nn.Linear(3, 2)
        second = torch.nn.Linear(3, 2)
        second.load_state_dict(first.state_dict())
        assert parameter_digest(first) == parameter_digest(second)
        with torch.no_grad():
            second.bias[0] += 1e-7
        assert parameter_digest(first) != parameter_digest(second)
        assert parameter_digest(first) != parameter_digest(first.to(torch.bfloat16))

    def test_lines(self) -> None:
        """Agreeing ranks give one digest; differing ranks are each listed in a warning."""
        from neuralgraph.callbacks import agreement_line

        assert agreement_line(["ab", "ab"]) == "parameters agree on all 2 ranks (digest ab)"
        line = agreement_line(["ab", "cd"])
        assert line.startswith("warning: parameters differ") and "rank 1 cd" in line


def _sync_worker(rank: int, port: int, out: str) -> None:
    """One of two gloo processes: rank 0 sees 1 wrong of 1, rank 1 sees 0 wrong of 3."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                         rank=rank, world_size=2)
    try:
        from ng_toy import MeanAbsError

        mae = MeanAbsError()
        n = 1 if rank == 0 else 3
        mae.update(pred=torch.full((n, 1), 1.0 if rank == 0 else 0.0), target=torch.zeros(n, 1))
        values = {"mae": float(mae.compute())}
        try:
            from neuralgraph_asr.metrics import WER
        except ImportError:
            WER = None
        if WER is not None:
            labels = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
            wer = WER(labels=labels)
            hyp, ref = ("a", "b") if rank == 0 else ("a b c", "a b c")
            ids = torch.tensor([[labels.index(c) for c in hyp]])
            logprobs = torch.nn.functional.one_hot(ids, len(labels) + 1).float().mul(20)
            wer.update(predictions=logprobs.log_softmax(-1),
                       predictions_lengths=torch.tensor([ids.shape[1]]),
                       targets=torch.tensor([[labels.index(c) for c in ref]]),
                       target_lengths=torch.tensor([len(ref)]))
            values["wer"] = float(wer.compute())
        Path(out, f"{rank}.json").write_text(json.dumps(values))
    finally:
        torch.distributed.destroy_process_group()


class TestMetricReduction:
    def test_ratio_of_sums_across_ranks(self, tmp_path: Path) -> None:
        """With 1 example on rank 0 and 3 on rank 1, MAE and WER over both ranks are the ratio
        of summed errors to summed counts (0.25), not the mean of the ranks' ratios (0.5)."""
        context = multiprocessing.get_context("spawn")
        port = free_port()
        procs = [context.Process(target=_sync_worker, args=(rank, port, str(tmp_path)))
                 for rank in (0, 1)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=120)
            assert proc.exitcode == 0
        results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
        assert results[0] == results[1]
        assert results[0]["mae"] == pytest.approx(0.25)
        if "wer" in results[0]:
            assert results[0]["wer"] == pytest.approx(0.25)

