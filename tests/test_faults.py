"""Faults injected into training: SIGKILL mid-epoch then --resume, kills during saves, NaN losses.

The runs use the toy plugin's ``Faults`` module (tests/toy/ng_toy.py), which can SIGKILL its own
process, make the loss NaN, or slow a step down, at chosen training calls. docs/faults.md lists
what each test injects and what happens.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from neuralgraph.cli import main
from neuralgraph.resume import EpochRandomSampler, ExactResume, ResumableDataLoader, resumable
from tests.conftest import ROOT, run_cli

TOY_GRAPH = """\
name: faults
seed: 0
dim: 8
trainer: {max_epochs: 3, accelerator: cpu, devices: 1, log_every_n_steps: 5,
          enable_model_summary: false}
checkpoint: {every_n_train_steps: 5}
data:
  module: ToyRegression
  params: {dim: "${dim}", out: 1}
  train: {batch_size: 16, shuffle: true, n_samples: 256}
  validation: {batch_size: 32, n_samples: 64}
nodes:
  hidden: {module: Linear, params: {in_features: "${dim}", out_features: 16}, inputs: {x: data.x}}
  drop: {module: Dropout, train_only: true, params: {p: 0.1}, inputs: {x: hidden.y}}
  fault: {module: Faults, params: {}, inputs: {x: drop.y}}
  head: {module: Linear, params: {in_features: 16, out_features: 1}, inputs: {x: fault.y}}
  mse: {module: MSE, inputs: {pred: head.y, target: data.y}}
loss: mse.loss
optim: {name: adam, lr: 0.01, sched: {name: CosineAnnealing, warmup_steps: 4, min_lr: 0.0001}}
"""
STEPS_PER_EPOCH = 16  # 256 samples, batches of 16; 3 epochs = 48 steps


def _graph(tmp_path: Path) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(TOY_GRAPH)
    return path


def _train(graph: Path, work: Path, version: str | None, *overrides: str,
           resume: bool = False) -> subprocess.CompletedProcess[str]:
    args = ["train", str(graph), *overrides, "--exp-dir", str(work / "exp")]
    args += ["--version", version] if version else []
    return run_cli(*args, *(["--resume"] if resume else []), cwd=work)


def _weights(archive: Path) -> dict[str, torch.Tensor]:
    import tarfile

    from safetensors.torch import load

    with tarfile.open(archive) as tar:
        handle = tar.extractfile("weights.safetensors")
        assert handle is not None
        return load(handle.read())


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _records(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The toy graph trained 3 epochs without faults: (work folder, archive)."""
    work = tmp_path_factory.mktemp("uninterrupted")
    result = _train(_graph(work), work, "full", f"+nodes.fault.params.record={work}/full.txt")
    assert result.returncode == 0, result.stderr[-3000:]
    return work, work / "exp" / "faults" / "full" / "faults.ngm"


# --- resuming after SIGKILL ------------------------------------------------------------------


class TestResumeAfterSigkill:
    def test_self_kill_mid_epoch_resumes_exactly(self, uninterrupted, tmp_path):
        """SIGKILL at step 22 (epoch 1, batch 6), last checkpoint at step 20: `train GRAPH
        --resume` finds that run, replays exactly the batches after step 20 and ends with
        bit-identical weights."""
        full_work, full_archive = uninterrupted
        graph = _graph(tmp_path)
        killed = _train(graph, tmp_path, None, "+nodes.fault.params.kill_at=22",
                        f"+nodes.fault.params.record={tmp_path}/killed.txt")
        assert killed.returncode == -signal.SIGKILL
        run = tmp_path / "exp" / "faults" / "version_0"
        assert not (run / "faults.ngm").exists()
        ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
        assert ckpt["global_step"] == 20
        assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
            {"epoch": 1, "batches": 4, "length": STEPS_PER_EPOCH, "seed": 0}]
        resumed = _train(graph, tmp_path, None,
                         f"+nodes.fault.params.record={tmp_path}/resumed.txt", resume=True)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "Restored all states" in resumed.stderr
        assert "dataloader is not resumable" not in resumed.stderr
        assert not (tmp_path / "exp" / "faults" / "version_1").exists()
        full = _records(full_work / "full.txt")
        before, after = _records(tmp_path / "killed.txt"), _records(tmp_path / "resumed.txt")
        assert len(full) == 3 * STEPS_PER_EPOCH and len(before) == 22 and len(after) == 28
        assert before[:20] + after == full  # every batch after the checkpoint, nothing twice
        assert _same_weights(full_archive, run / "faults.ngm")

    def test_kill_from_outside_resumes_exactly(self, uninterrupted, tmp_path):
        """A `neuralgraph train` killed with SIGKILL by another process at an arbitrary moment
        resumes from its last checkpoint to the uninterrupted run's weights."""
        _, full_archive = uninterrupted
        graph = _graph(tmp_path)
        exe = Path(sys.executable).parent / "neuralgraph"
        proc = subprocess.Popen(
            [str(exe), "train", str(graph), "+nodes.fault.params.sleep=0.05",
             "--exp-dir", str(tmp_path / "exp"), "--version", "run"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        folder = tmp_path / "exp" / "faults" / "run" / "checkpoints"
        deadline = time.monotonic() + 120
        while not list(folder.glob("*step=2[05].ckpt")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint at step 20 or 25 in 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        assert not (folder.parent / "faults.ngm").exists()
        resumed = _train(graph, tmp_path, "run", resume=True)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert _same_weights(full_archive, folder.parent / "faults.ngm")

    def test_nothing_to_resume_is_a_user_error(self, tmp_path, capsys):
        """--resume with no checkpoint exits 2 and says where it looked."""
        code = main(["train", str(_graph(tmp_path)), "--resume", "--exp-dir",
                     str(tmp_path / "exp")])
        assert code == 2
        assert "no checkpoint to resume from under" in capsys.readouterr().err

    def test_damaged_checkpoint_is_refused(self, tmp_path, capsys):
        """A truncated last.ckpt (copied half-way, disk full) is refused by name, exit 2; the
        temporary files of interrupted saves are removed."""
        folder = tmp_path / "exp" / "faults" / "run" / "checkpoints"
        folder.mkdir(parents=True)
        (folder / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
        (folder / ".last.ckpt.abc123.tmp").write_bytes(b"half")
        (folder / "epoch=0-step=5.ckpt").write_bytes(b"")
        code = main(["train", str(_graph(tmp_path)), "--resume", "--exp-dir",
                     str(tmp_path / "exp"), "--version", "run"])
        err = capsys.readouterr().err
        assert code == 2
        assert "last.ckpt is not a complete checkpoint" in err
        assert "epoch=0-step=5.ckpt" in err
        assert not (folder / ".last.ckpt.abc123.tmp").exists()


class TestResumableDataLoader:
    def _loader(self, n: int = 20, workers: int = 0, **kwargs) -> ResumableDataLoader:
        data = TensorDataset(torch.arange(n))
        return resumable(DataLoader(data, batch_size=3, shuffle=True, num_workers=workers,
                                    **kwargs), seed=5)

    @staticmethod
    def _epoch(loader: DataLoader, epoch: int) -> list[list[int]]:
        loader.sampler.set_epoch(epoch)
        return [b[0].tolist() for b in loader]

    @pytest.mark.parametrize("workers", [0, 2])
    def test_position_continues(self, workers):
        """A new loader given the state after 3 batches yields exactly the epoch's other batches
        (also with worker processes, which fetch ahead)."""
        whole = self._epoch(self._loader(workers=workers), 1)
        first = self._loader(workers=workers)
        first.sampler.set_epoch(1)
        iterator = iter(first)
        seen = [next(iterator)[0].tolist() for _ in range(3)]
        state = first.state_dict()
        assert state == {"epoch": 1, "batches": 3, "length": 7, "seed": 5}
        second = self._loader(workers=workers)
        second.load_state_dict(state)
        assert seen + [b[0].tolist() for b in second] == whole
        assert self._epoch(second, 2) == self._epoch(self._loader(), 2)  # no skip next epoch

    def test_persistent_workers_skip_once(self):
        """With persistent workers the skip applies to the resumed epoch only."""
        reference = self._loader(workers=1, persistent_workers=True)
        whole = [self._epoch(reference, e) for e in (0, 1)]
        loader = self._loader(workers=1, persistent_workers=True)
        loader.load_state_dict({"epoch": 0, "batches": 5, "length": 7, "seed": 5})
        assert [b[0].tolist() for b in loader] == whole[0][5:]
        assert self._epoch(loader, 1) == whole[1]

    def test_finished_epoch_starts_the_next(self):
        """A state taken after the last batch continues with the next epoch's first batch."""
        loader = self._loader()
        loader.load_state_dict({"epoch": 0, "batches": 7, "length": 7, "seed": 5})
        assert loader.sampler.epoch == 1
        assert [b[0].tolist() for b in loader] == self._epoch(self._loader(), 1)

    def test_changed_data_restarts_the_epoch(self):
        """A state from a loader of another length restarts the epoch, with a warning."""
        loader = self._loader(n=30)
        with pytest.warns(UserWarning, match="the epoch restarts from its first batch"):
            loader.load_state_dict({"epoch": 0, "batches": 4, "length": 7, "seed": 5})
        assert len([b for b in loader]) == 10

    def test_order_is_seeded_by_epoch(self):
        """The order depends on (seed, epoch) only: the same for two loaders, new each epoch."""
        assert self._epoch(self._loader(), 3) == self._epoch(self._loader(), 3)
        assert self._epoch(self._loader(), 3) != self._epoch(self._loader(), 4)
        assert isinstance(self._loader().sampler, EpochRandomSampler)

    def test_settings_are_kept(self):
        """Batch size, drop_last, collate_fn and an unshuffled order survive the conversion."""
        data = TensorDataset(torch.arange(10))
        plain = DataLoader(data, batch_size=4, drop_last=True, collate_fn=lambda items: items)
        loader = resumable(plain, seed=0)
        assert isinstance(loader, ResumableDataLoader)
        assert [len(b) for b in loader] == [4, 4]
        assert [int(x[0]) for b in loader for x in b] == list(range(8))

    def test_iterating_leaves_the_global_generator_alone(self):
        """Making an iterator draws no number from torch's global generator (dropout's)."""
        loader = self._loader()
        torch.manual_seed(3)
        expected = torch.rand(3)
        torch.manual_seed(3)
        list(loader)
        assert torch.equal(torch.rand(3), expected)

    def test_lightning_can_inject_a_distributed_sampler(self):
        """Lightning re-creates the loader with a DistributedSampler; the copy stays resumable."""
        from pytorch_lightning.utilities.data import _update_dataloader

        loader = self._loader()
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=True)
        copy = _update_dataloader(loader, sampler)
        assert isinstance(copy, ResumableDataLoader) and copy.sampler is sampler
        whole = [b[0].tolist() for b in copy]
        copy.load_state_dict({"epoch": 0, "batches": 2, "length": 4, "seed": None})
        assert [b[0].tolist() for b in copy] == whole[2:]

    def test_bucketing_batch_order_is_replayed(self):
        """ASR's duration bucketing shuffles its batches with the sampler's (seed, epoch), so a
        resumed epoch skips exactly the batches already consumed."""
        audio = pytest.importorskip("neuralgraph_audio")
        dataset = TensorDataset(torch.arange(40))
        durations = [float(i % 7) for i in range(40)]

        def loader() -> DataLoader:
            batches = audio.DurationBucketBatchSampler(
                torch.utils.data.RandomSampler(dataset), 4, False, durations, pool_batches=2)
            return resumable(DataLoader(dataset, batch_sampler=batches), seed=11)

        whole = [b[0].tolist() for b in loader()]
        again = loader()
        again.load_state_dict({"epoch": 0, "batches": 6, "length": 10, "seed": 11})
        assert [b[0].tolist() for b in again] == whole[6:]


class TestExactResume:
    def test_random_state_round_trip(self):
        """The saved generator states are put back when training starts."""
        import random

        import numpy as np

        callback = ExactResume()
        torch.manual_seed(1)
        state = callback.state_dict()
        expected = (torch.rand(2), np.random.rand(), random.random())
        torch.manual_seed(2)
        np.random.seed(2)
        random.seed(2)
        restored = ExactResume()
        restored.load_state_dict(state)

        class Loop:
            restarting = False

        class Trainer:
            fit_loop = Loop()

        restored.on_train_start(Trainer(), None)  # type: ignore[arg-type]
        got = (torch.rand(2), np.random.rand(), random.random())
        assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


@pytest.mark.slow
class TestResumeASR:
    def test_digits_small_killed_and_resumed(self, tmp_path):
        """The digits example (bucketing, shuffling, SpecAugment, dither, Novograd with a cosine
        schedule, one loader worker) killed after its step-4 checkpoint resumes to the
        uninterrupted run's weights."""
        digits = ROOT / "examples" / "asr" / "data" / "digits"
        for split, n in (("train", 48), ("dev", 16)):
            lines = (digits / f"{split}_manifest.json").read_text().splitlines()[:n]
            entries = [json.loads(line) for line in lines]
            for entry in entries:
                entry["audio_filepath"] = str(digits / entry["audio_filepath"])
            (tmp_path / f"{split}.json").write_text("".join(json.dumps(e) + "\n" for e in entries))
        graph = ROOT / "examples" / "asr" / "digits_small.yaml"
        args = [str(graph), "trainer.max_epochs=3",
                f"data.train.manifest_filepath={tmp_path}/train.json",
                f"data.validation.manifest_filepath={tmp_path}/dev.json",
                f"data.test.manifest_filepath={tmp_path}/dev.json",
                "+checkpoint.every_n_train_steps=2", "--exp-dir", str(tmp_path / "exp")]
        full = run_cli("train", *args, "--version", "full", cwd=tmp_path)
        assert full.returncode == 0, full.stderr[-3000:]
        exe = Path(sys.executable).parent / "neuralgraph"
        proc = subprocess.Popen([str(exe), "train", *args, "--version", "run"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        folder = tmp_path / "exp" / "digits_small" / "run" / "checkpoints"
        while not list(folder.glob("*step=4.ckpt")) and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        resumed = run_cli("train", *args, "--version", "run", "--resume", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert _same_weights(tmp_path / "exp" / "digits_small" / "full" / "digits_small.ngm",
                             folder.parent / "digits_small.ngm")


class TestRunOptions:
    @pytest.mark.parametrize("override,message", [
        ("checkpoint.every_n_train_steps=0", "every_n_train_steps must be a positive int"),
        ("+checkpoint.evry_n_train_steps=3", "'evry_n_train_steps' is not a key of 'checkpoint'"),
        ("+checkpoint.mode=up", "checkpoint.mode must be 'min' or 'max'"),
        ("seed=-1", "'seed' must be an int in [0, 2**32)"),
        ("seed=abc", "'seed' must be an int"),
    ])
    def test_checked_before_training(self, tmp_path, capsys, override, message):
        """The keys `neuralgraph train` reads for faults are checked by `neuralgraph check`."""
        assert main(["check", str(_graph(tmp_path)), override]) == 2
        assert message in capsys.readouterr().err


class TestCorruptAudio:
    @pytest.mark.parametrize("workers", [0, 1])
    def test_undecodable_audio_names_its_line(self, tmp_path, workers):
        """A FLAC cut short keeps a readable header, so it passes the check before training;
        reading it then stops with one message naming manifest:line (from a worker too)."""
        import numpy as np
        import soundfile as sf

        data = pytest.importorskip("neuralgraph_asr.data")
        signal = (0.1 * np.sin(np.arange(32000) / 5.0)).astype(np.float32)
        sf.write(tmp_path / "good.flac", signal, 16000)
        sf.write(tmp_path / "full.flac", signal, 16000)
        whole = (tmp_path / "full.flac").read_bytes()
        (tmp_path / "cut.flac").write_bytes(whole[: len(whole) // 3])
        manifest = tmp_path / "m.json"
        manifest.write_text("".join(json.dumps({"audio_filepath": name, "duration": 2.0,
                                                "text": "a b"}) + "\n"
                                    for name in ("good.flac", "cut.flac")))
        source = data.AudioToCharDataset([" ", *"abcdefghijklmnopqrstuvwxyz", "'"])
        assert source.validate("train", manifest_filepath=str(manifest)) == []
        loader = source.dataloader("train", manifest_filepath=str(manifest), batch_size=1,
                                   num_workers=workers)
        with pytest.raises(pytest.importorskip("neuralgraph_audio").CorruptAudioError) as err:
            list(loader)
        message = str(err.value)
        assert message.startswith(f"{manifest}:2: corrupt audio: its header was readable")
        assert "cut.flac" in message and "Traceback" not in message


# --- atomic saves ----------------------------------------------------------------------------

SAVER = """\
import sys, torch
from pathlib import Path
kind, target = sys.argv[1], Path(sys.argv[2])
payload = torch.randn(8_000_000)  # 32 MB, so that a kill is likely to land inside a write
i = 0
while True:
    i += 1
    if kind == "checkpoint":
        from neuralgraph.callbacks import AtomicCheckpointIO
        AtomicCheckpointIO().save_checkpoint({"i": i, "payload": payload + i}, target)
    elif kind == "plain":
        torch.save({"i": i, "payload": payload + i}, target)
    else:
        import neuralgraph.registry, pytorch_lightning as pl
        from neuralgraph import Graph
        from neuralgraph.model import GraphModel
        if i == 1:
            model = GraphModel(Graph.from_string(sys.argv[3]))
        with torch.no_grad():
            model.nodes["big"].linear.bias.fill_(i)
        model.save_to(target)
    print(i, flush=True)
"""

BIG_GRAPH = """\
nodes:
  big: {module: Linear, params: {in_features: 2000, out_features: 4000}, inputs: {x: data.x}}
data: {module: ToyRegression, params: {dim: 2000}}
"""


def _kill_during_saves(tmp_path: Path, kind: str, target: Path, attempts: int = 4) -> bool:
    """Start a process that saves ``target`` again and again and SIGKILL it; check the target
    after each kill. Repeat until a kill lands inside a write (it leaves a temporary file);
    returns whether one did."""
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    for k in range(attempts):
        proc = subprocess.Popen([sys.executable, str(script), kind, str(target), BIG_GRAPH],
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.stdout is not None
        proc.stdout.readline()  # one complete save exists
        time.sleep(0.05 + 0.037 * k)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        leftovers = list(target.parent.glob(f".{target.name}.*.tmp"))
        _VERIFY[kind](target)
        if leftovers:
            return True
    return False


def _verify_checkpoint(target: Path) -> None:
    state = torch.load(target, weights_only=True)  # a truncated file raises here
    assert state["i"] >= 1 and state["payload"].shape == (8_000_000,)


def _verify_archive(target: Path) -> None:
    from neuralgraph.model import GraphModel

    model = GraphModel.restore_from(target)
    bias = model.nodes["big"].linear.bias.detach()
    assert bool((bias == bias[0]).all()) and float(bias[0]) >= 1


_VERIFY = {"checkpoint": _verify_checkpoint, "archive": _verify_archive}


class TestAtomicSaves:
    def test_kill_during_checkpoint_saves(self, tmp_path):
        """Killed while saving 32 MB checkpoints again and again, the target is always a whole,
        loadable checkpoint (the old or the new one)."""
        assert _kill_during_saves(tmp_path, "checkpoint", tmp_path / "last.ckpt")

    def test_kill_during_archive_saves(self, tmp_path):
        """Killed while saving a 32 MB model archive again and again, the .ngm always restores,
        with the weights of one whole save."""
        assert _kill_during_saves(tmp_path, "archive", tmp_path / "model.ngm")

    def test_plain_torch_save_is_not_safe(self, tmp_path):
        """Control: the same kill against a plain torch.save leaves a broken file, so the
        tests above would notice a non-atomic save."""
        script = tmp_path / "saver.py"
        script.write_text(SAVER)
        target = tmp_path / "plain.ckpt"
        for k in range(4):
            proc = subprocess.Popen([sys.executable, str(script), "plain", str(target)],
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            proc.stdout.readline()
            time.sleep(0.05 + 0.037 * k)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            try:
                torch.load(target, weights_only=True)
            except Exception:  # a truncated zip: RuntimeError, EOFError, ...
                return
        pytest.fail("4 kills during plain torch.save calls never left a broken file")

    def test_saved_files_follow_the_umask(self, tmp_path):
        """Checkpoints and archives get 0666 minus the umask, not mkstemp's private 0600."""
        from neuralgraph.callbacks import AtomicCheckpointIO

        old = os.umask(0o022)
        try:
            AtomicCheckpointIO().save_checkpoint({"a": 1}, tmp_path / "x.ckpt")
        finally:
            os.umask(old)
        assert (tmp_path / "x.ckpt").stat().st_mode & 0o777 == 0o644


# --- non-finite loss -------------------------------------------------------------------------


class TestNonFiniteLoss:
    def test_skip_counts_and_goes_on(self, tmp_path):
        """nonfinite_loss: skip (the default) names each skipped step, sums them up at the end,
        and the run finishes with finite weights."""
        result = _train(_graph(tmp_path), tmp_path, "run", "+nodes.fault.params.nan_at=[3,21]",
                        "~checkpoint")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "the loss is nan at global step 3 (epoch 0, batch 3): step skipped" in result.stderr
        assert "the loss is nan at global step 21 (epoch 1, batch 5)" in result.stderr
        assert "2 training steps had a non-finite loss and were skipped" in result.stderr
        assert "returned `None`" not in result.stderr
        weights = _weights(tmp_path / "exp" / "faults" / "run" / "faults.ngm")
        assert all(bool(torch.isfinite(w).all()) for w in weights.values())

    def test_skipped_steps_leave_weights_unchanged(self, tmp_path):
        """With a NaN loss at every step, three skipped steps leave the initial weights."""
        import pytorch_lightning as pl

        from neuralgraph import Graph
        from neuralgraph.model import GraphModel

        graph = Graph.from_string(TOY_GRAPH, ["+nodes.fault.params.nan_at=[0,1,2]",
                                              "~optim.sched", "~checkpoint"])
        model = GraphModel(graph)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = pl.Trainer(max_steps=3, accelerator="cpu", logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(model, model.dataloader("train"))
        assert trainer.global_step == 3 and model.nonfinite_steps == 3
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        saved: dict = {}
        model.on_save_checkpoint(saved)
        assert saved == {"nonfinite_steps": 3}

    def test_stop_exits_1_with_the_step(self, tmp_path):
        """nonfinite_loss: stop ends the run with one message naming the step, exit 1, no
        traceback; the checkpoints before it stay."""
        result = _train(_graph(tmp_path), tmp_path, "run", "+nodes.fault.params.nan_at=[7]",
                        "+nonfinite_loss=stop")
        assert result.returncode == 1
        assert "error: the loss is nan at global step 7 (epoch 0, batch 7); training stopped " \
               "(nonfinite_loss: stop)" in result.stderr
        assert "Traceback" not in result.stderr
        assert (tmp_path / "exp" / "faults" / "run" / "checkpoints" / "last.ckpt").is_file()

    def test_bad_policy_is_a_graph_error(self, tmp_path, capsys):
        """An unknown policy is found by `neuralgraph check`, exit 2."""
        assert main(["check", str(_graph(tmp_path)), "+nonfinite_loss=ignore"]) == 2
        assert "'nonfinite_loss' must be 'skip'" in capsys.readouterr().err
