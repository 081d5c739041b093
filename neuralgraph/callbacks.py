"""Lightning plumbing: plain log lines when there is no terminal, atomic checkpoint writes, and
the run folder and parameter agreement of distributed runs. What a run killed mid-epoch needs to
continue exactly is in :mod:`neuralgraph.resume`."""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from neuralgraph.archive import atomic_write

__all__ = ["AtomicCheckpointIO", "LogLines", "RankAgreement", "RunFolder", "parameter_digest"]


class LogLines(pl.Callback):
    """Print one line every ``every_n_steps`` training steps and after each validation (rank 0)."""

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = max(1, every_n_steps)
        self._start = time.monotonic()

    @staticmethod
    def _metrics(trainer: pl.Trainer, prefix: tuple[str, ...]) -> str:
        parts = []
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(prefix) and isinstance(value, torch.Tensor) and value.numel() == 1:
                parts.append(f"{key} {value.item():.4g}")
        return " ".join(parts)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and step % self.every_n_steps == 0 and step > 0:
            elapsed = time.monotonic() - self._start
            print(f"epoch {trainer.current_epoch} step {step} "
                  f"{self._metrics(trainer, ('train_',))} ({elapsed:.0f}s)",
                  file=sys.stderr, flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            print(f"epoch {trainer.current_epoch} step {trainer.global_step} validation: "
                  f"{self._metrics(trainer, ('val_',))}", file=sys.stderr, flush=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file in the same folder, then renames it into place.

    A process killed during a save leaves the previous checkpoint intact (and a
    ``.NAME.*.tmp`` file that ``neuralgraph train --resume`` removes). The file gets the usual
    permissions (``0666`` minus the umask), not ``mkstemp``'s private ``0600``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        with atomic_write(Path(path)) as handle:
            torch.save(checkpoint, handle)


class RunFolder(pl.Callback):
    """Make every rank use global rank 0's run folder, and write the run's files there on rank 0.

    Each process chooses a folder before training; processes started apart (torchrun or SLURM
    on several nodes) may choose differently. Once the processes are connected (``setup``),
    rank 0's choice is broadcast to all, and only rank 0 creates the folder and writes ``files``
    (name -> text) into it.
    """

    def __init__(self, directory: Path, files: Mapping[str, str] | None = None) -> None:
        self.directory = Path(directory)
        self.files = dict(files or {})

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.directory = Path(trainer.strategy.broadcast(str(self.directory)))
        if trainer.is_global_zero:
            self.directory.mkdir(parents=True, exist_ok=True)
            for name, text in self.files.items():
                (self.directory / name).write_text(text, encoding="utf-8")


def parameter_digest(module: torch.nn.Module) -> str:
    """The first 16 hex digits of the SHA-256 of a module's parameters (names, dtypes and bytes,
    in ``named_parameters`` order): equal digests mean bit-identical parameters."""
    digest = hashlib.sha256()
    for name, param in module.named_parameters():
        data = param.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{tuple(param.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def agreement_line(digests: list[str]) -> str:
    """The line rank 0 prints about the ranks' parameter digests (rank i has ``digests[i]``)."""
    if len(set(digests)) == 1:
        return f"parameters agree on all {len(digests)} ranks (digest {digests[0]})"
    listed = ", ".join(f"rank {i} {d}" for i, d in enumerate(digests))
    return (f"warning: parameters differ between ranks after training ({listed}); the archive "
            "holds rank 0's. A module that changes parameters outside the optimizer step, or "
            "parameters left out of gradient synchronization, cause this")


class RankAgreement(pl.Callback):
    """After a data-parallel fit, check that every rank ends with the same parameters.

    Each rank hashes its parameters (:func:`parameter_digest`); the digests are gathered and
    rank 0 prints :func:`agreement_line`. Only for DDP strategies (FSDP and DeepSpeed shard the
    parameters, so ranks legitimately differ) and more than one process.
    """

    def __init__(self) -> None:
        self.digests: list[str] = []

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pytorch_lightning.strategies import DDPStrategy, DeepSpeedStrategy

        strategy = trainer.strategy
        if trainer.world_size < 2 or not isinstance(strategy, DDPStrategy) or \
                isinstance(strategy, DeepSpeedStrategy):  # ZeRO-3 shards the parameters
            return
        value = int(parameter_digest(pl_module), 16) - 2 ** 63  # fits an int64
        mine = torch.tensor([value], dtype=torch.int64, device=pl_module.device)
        with warnings.catch_warnings():  # Lightning calls a torch function deprecated in 2.10+
            warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")
            gathered = trainer.strategy.all_gather(mine).reshape(-1).tolist()
        self.digests = [f"{int(v) + 2 ** 63:016x}" for v in gathered]
        if trainer.is_global_zero:
            print(agreement_line(self.digests), file=sys.stderr, flush=True)
