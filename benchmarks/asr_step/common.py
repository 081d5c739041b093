"""What every worker of the ASR training-step benchmark shares: the model, the batch, the protocol.

This file is imported by workers that run under *different* virtual environments (NeMo's venv and
neuralgraph's), so it depends on the standard library and torch only.

Protocol (one JSON object per line on the worker's stdout, commands one per line on its stdin):

- on startup the worker prints ``{"ready": true, "name": ..., "params": N, "versions": {...}}``;
- ``step N``    → runs N training steps, prints
  ``{"times": [wall s, ...], "cpu_times": [process CPU s, ...], "loss": last_loss}``;
- ``preproc N`` → runs N preprocessor-only forward passes, prints
  ``{"times": [...], "cpu_times": [...]}``;
- ``quit``      → exits 0.

Anything a library prints goes to stderr: :func:`protocol_channel` moves fd 1 aside first.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import torch

THREADS = 2
"""Intra-op threads per worker (``torch.set_num_threads``; the driver also sets OMP_NUM_THREADS)."""

SAMPLE_RATE = 16000
NUM_LABELS = 28
"""28 characters (space, a-z, apostrophe); the CTC blank is index 28."""
FEAT_IN = 64

LR = 1e-3
WEIGHT_DECAY = 1e-3
"""Optimizer: ``torch.optim.AdamW(lr=LR, weight_decay=WEIGHT_DECAY)`` in every worker."""


def _block(
    filters: int,
    kernel: int,
    *,
    repeat: int = 1,
    stride: int = 1,
    dilation: int = 1,
    residual: bool = False,
    separable: bool = True,
) -> dict[str, Any]:
    """One Jasper block in NeMo's config format (lists for kernel/stride/dilation)."""
    return {
        "filters": filters,
        "repeat": repeat,
        "kernel": [kernel],
        "stride": [stride],
        "dilation": [dilation],
        "dropout": 0.0,
        "residual": residual,
        "separable": separable,
    }


QUARTZNET_5X5: list[dict[str, Any]] = [
    _block(256, 33, stride=2),
    _block(256, 33, repeat=5, residual=True),
    _block(256, 39, repeat=5, residual=True),
    _block(512, 51, repeat=5, residual=True),
    _block(512, 63, repeat=5, residual=True),
    _block(512, 75, repeat=5, residual=True),
    _block(512, 87, dilation=2),
    _block(1024, 1, separable=False),
]
"""QuartzNet 5x5 (QuartzNet 15x5 with each group of three blocks taken once): 6,713,181 params
with the 1024 → 28+1 decoder."""

QUARTZNET_5X5_PARAMS = 6_713_181

SPEC_AUGMENT: dict[str, int] = {"rect_masks": 5, "rect_time": 120, "rect_freq": 50}
"""SpecCutout of NeMo's QuartzNet configs; applied between preprocessor and encoder only when
the driver passes ``--spec-augment`` (``ASR_STEP_SPEC_AUGMENT=1``)."""


def spec_augment_on() -> bool:
    """Whether this run includes spec augmentation (``ASR_STEP_SPEC_AUGMENT=1``)."""
    return os.environ.get("ASR_STEP_SPEC_AUGMENT", "0") == "1"


@dataclass(frozen=True)
class BatchSpec:
    """The benchmark batch: ``batch`` utterances padded to ``seconds``.

    ``lengths="full"``: every utterance is ``seconds`` long; ``"varied"``: lengths uniform in
    [``min_seconds``, ``seconds``]. Transcripts have ``chars_per_second`` * duration labels.
    """

    batch: int = 8
    seconds: float = 10.0
    min_seconds: float = 8.0
    lengths: str = "full"
    chars_per_second: float = 15.0
    seed: int = 1234


@dataclass
class Batch:
    """Tensors of one batch.

    audio_signal (B, T_audio) float32, audio_length (B,) int64, transcripts (B, U) int64 in
    [0, NUM_LABELS), transcript_length (B,) int64.
    """

    audio_signal: torch.Tensor
    audio_length: torch.Tensor
    transcripts: torch.Tensor
    transcript_length: torch.Tensor


def make_batch(spec: BatchSpec) -> Batch:
    """Builds the batch deterministically from ``spec.seed`` (same tensors under any torch venv)."""
    if spec.lengths not in ("full", "varied"):
        raise ValueError(f"lengths must be 'full' or 'varied', got {spec.lengths!r}")
    gen = torch.Generator().manual_seed(spec.seed)
    max_len = round(spec.seconds * SAMPLE_RATE)
    if spec.lengths == "full":
        audio_length = torch.full((spec.batch,), max_len, dtype=torch.int64)
    else:
        min_len = round(spec.min_seconds * SAMPLE_RATE)
        audio_length = torch.randint(min_len, max_len + 1, (spec.batch,), generator=gen)
        audio_length[0] = max_len
    audio = 0.1 * torch.randn(spec.batch, max_len, generator=gen)
    frames = torch.arange(max_len).unsqueeze(0) < audio_length.unsqueeze(1)
    audio = audio * frames
    transcript_length = (audio_length.double() / SAMPLE_RATE * spec.chars_per_second).long()
    max_u = int(transcript_length.max())
    transcripts = torch.randint(0, NUM_LABELS, (spec.batch, max_u), generator=gen)
    transcripts = transcripts * (torch.arange(max_u).unsqueeze(0) < transcript_length.unsqueeze(1))
    return Batch(audio, audio_length, transcripts, transcript_length)


def spec_from_env() -> BatchSpec:
    """The batch spec the driver passed in ``ASR_STEP_BATCH`` (JSON of BatchSpec fields)."""
    raw = os.environ.get("ASR_STEP_BATCH")
    return BatchSpec(**json.loads(raw)) if raw else BatchSpec()


def setup_threads() -> None:
    """Pins torch's intra-op threads to :data:`THREADS` (``ASR_STEP_THREADS`` overrides)."""
    torch.set_num_threads(int(os.environ.get("ASR_STEP_THREADS", THREADS)))


def protocol_channel() -> TextIO:
    """Returns a text stream on the original stdout and points fd 1 (and sys.stdout) at stderr."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def count_params(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def make_optimizer(params: Any) -> torch.optim.Optimizer:
    """The optimizer every worker uses."""
    return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)


def timed(n: int, fn: Callable[[], float | None]) -> dict[str, Any]:
    """Runs ``fn`` n times.

    Returns ``times`` (wall seconds per call), ``cpu_times`` (process CPU seconds per call, all
    threads; on a shared machine less sensitive to other load than wall time) and ``last`` (the
    last value ``fn`` returned).
    """
    times: list[float] = []
    cpu_times: list[float] = []
    last: float | None = None
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        last = fn()
        cpu_times.append(time.process_time() - c0)
        times.append(time.perf_counter() - t0)
    return {"times": times, "cpu_times": cpu_times, "last": last}


def serve_module(
    name: str,
    build: Callable[[], torch.nn.Module],
    versions: dict[str, str],
    info: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
    out: TextIO | None = None,
) -> None:
    """Serve a module built by ``build()`` (called after the batch is made and the seed set to
    0) whose ``forward(batch)`` is the loss and ``features(batch)`` the preprocessor."""
    batch = make_batch(spec_from_env())
    torch.manual_seed(0)
    model = build()
    model.train()
    opt = make_optimizer(model.parameters())

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(batch)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def preproc() -> None:
        with torch.no_grad():
            model.features(batch)

    extra = info(model) if info is not None else None
    serve(name, count_params(model), versions, step, preproc, extra, out=out)


def serve(
    name: str,
    params: int,
    versions: dict[str, str],
    step: Callable[[], float],
    preproc: Callable[[], None],
    info: dict[str, Any] | None = None,
    out: TextIO | None = None,
) -> None:
    """Answers the driver's commands on stdin until ``quit`` or end of input."""
    out = out if out is not None else sys.stdout
    hello = {
        "ready": True,
        "name": name,
        "params": params,
        "versions": versions,
        "threads": torch.get_num_threads(),
        "spec_augment": spec_augment_on(),
        **(info or {}),
    }
    print(json.dumps(hello), file=out, flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        try:
            n = int(words[1]) if len(words) > 1 else 1
            if words[0] == "step":
                reply: dict[str, Any] = timed(n, step)
                reply["loss"] = reply.pop("last")
            elif words[0] == "preproc":
                reply = timed(n, preproc)
                del reply["last"]
            else:
                reply = {"error": f"unknown command {words[0]!r}"}
        except Exception as exc:  # reported to the driver, which stops the run
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), file=out, flush=True)
