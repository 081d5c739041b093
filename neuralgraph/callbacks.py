"""Lightning plumbing: plain log lines when there is no terminal, atomic checkpoint writes."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "LogLines"]


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

    A process killed during a save leaves the previous checkpoint intact.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
