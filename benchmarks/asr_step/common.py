"""What every worker of the ASR training-step benchmark shares: the model, the batch, the protocol.

This file is imported by workers that run under *different* virtual environments (NeMo's venv and
neuralgraph's), so it depends on the standard library and torch only.

Protocol (one JSON object per line on the worker's stdout, commands one per line on its stdin):

- on startup the worker prints ``{"ready": true, "name": ..., "params": N, "versions": {...}}``;
- ``step N``    → runs N training steps, prints
  ``{"times": [wall s, ...], "cpu_times": [process CPU s, ...], "loss": last_loss}``;
- ``preproc N`` → runs N preprocessor-only forward passes, prints
  ``{"times": [...], "cpu_times": [...]}``;
- ``save_init PATH`` → writes the model's weights under their shared names (:func:`save_shared`);
- ``load_init PATH`` → loads such a file (every shared name must be there) and starts a fresh
  optimizer; prints ``{"loaded": N, "replaced_max_abs": {name: max |new - old|}}`` for the
  preprocessor's window and filterbank;
- ``check PATH`` → one untimed forward + backward pass in training mode with dither 0 and no
  spectrogram augmentation, no optimizer step; writes the gradients (shared names) to PATH and
  prints ``{"loss": x, "encoded_lengths": [...]}``;
- ``check_fp64 PATH`` (plain worker only) → the same pass with the encoder, decoder and loss in
  float64 on a copy of the model: the reference for float32 rounding;
- ``quit``      → exits 0.

Shared names are NeMo's state-dict keys (``encoder.encoder.0.mconv.0.conv.weight``,
``decoder.decoder_layers.0.weight``, ``preprocessor.featurizer.fb``...): the plain worker's
modules have the same attribute names, the graph worker's keys have a ``nodes.`` prefix, and the
mel preprocessor's window and filterbank (non-persistent buffers in neuralgraph, so not in its
state dict) are ``preprocessor.window`` / ``preprocessor.fb`` there (:func:`shared_name`).

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


NEMO_FRAMING: dict[str, Any] = {"stft_pad_mode": "constant", "drop_last_frame": True}
"""neuralgraph preprocessor parameters that give NeMo 3.0's framing (zero-padded STFT edges,
floor(samples / hop) frames reported; ``neuralgraph import-nemo`` sets the same). The feature
tensors have the same shape either way (1001 STFT frames padded to 1008 for 10 s); what changes
is the reported length (1000 vs 1001 frames, 500 vs 501 after the encoder) and the edge frames,
so the normalization statistics, the masks and the CTC loss."""


def framing() -> str:
    """``nemo`` (default: the graph and plain workers use :data:`NEMO_FRAMING`) or ``native``
    (neuralgraph's own defaults: reflected edges, one frame more), from ``ASR_STEP_FRAMING``."""
    value = os.environ.get("ASR_STEP_FRAMING", "nemo")
    if value not in ("nemo", "native"):
        raise ValueError(f"ASR_STEP_FRAMING must be 'nemo' or 'native', got {value!r}")
    return value


def framing_params() -> dict[str, Any]:
    """Keyword arguments for neuralgraph's mel preprocessor under :func:`framing`."""
    return dict(NEMO_FRAMING) if framing() == "nemo" else {}


PREPROCESSOR_BUFFERS = ("window", "fb")
"""The mel preprocessor's computed buffers, shared as ``preprocessor.featurizer.<name>`` (NeMo's
keys; NeMo's filterbank comes from librosa, ours from torchaudio: up to ~1e-5 apart)."""


def shared_name(key: str, prefix: str = "") -> str:
    """Our key (``prefix`` + NeMo's key; ``preprocessor.fb`` for the filterbank) -> the shared
    (NeMo) name. ``prefix`` is ``"nodes."`` for the graph worker, ``""`` for the plain one."""
    if not key.startswith(prefix):
        raise KeyError(f"{key!r} does not start with {prefix!r}")
    key = key[len(prefix):]
    head, _, last = key.rpartition(".")
    if head == "preprocessor" and last in PREPROCESSOR_BUFFERS:
        return f"preprocessor.featurizer.{last}"
    return key


def model_tensors(
    model: torch.nn.Module, prefix: str = "", preprocessor: torch.nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Shared name -> the live tensor, for every entry of ``model.state_dict()`` (parameters
    and persistent buffers) plus ``preprocessor``'s window and filterbank when given (ours are
    not in the state dict)."""
    tensors = {shared_name(k, prefix): t for k, t in model.state_dict(keep_vars=True).items()}
    if preprocessor is not None:
        for name in PREPROCESSOR_BUFFERS:
            tensors[f"preprocessor.featurizer.{name}"] = getattr(preprocessor, name)
    return tensors


def model_grads(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Shared name -> gradient of each parameter that has one."""
    return {
        shared_name(k, prefix): p.grad.detach().clone()
        for k, p in model.named_parameters()
        if p.grad is not None
    }


def save_shared(tensors: dict[str, torch.Tensor], path: str) -> int:
    """Writes ``tensors`` (shared names) with ``torch.save``; returns how many."""
    torch.save({k: t.detach().clone().contiguous() for k, t in tensors.items()}, path)
    return len(tensors)


def load_shared(tensors: dict[str, torch.Tensor], path: str) -> dict[str, Any]:
    """Copies the file's tensors into ``tensors`` (the live ones, shared names), reshaping where
    the two layouts differ only in shape (NeMo's filterbank is (1, 64, 257), ours (64, 257)).

    Raises ``KeyError`` naming what is missing on either side. Returns ``loaded`` (count) and
    ``replaced_max_abs``: for the preprocessor's buffers, how far the loaded values are from the
    ones the module had computed.
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    missing = sorted(set(tensors) - set(saved))
    unexpected = sorted(set(saved) - set(tensors))
    if missing or unexpected:
        raise KeyError(f"shared weights do not match: missing {missing[:5]}, unexpected "
                       f"{unexpected[:5]}")
    replaced: dict[str, float] = {}
    with torch.no_grad():
        for name, target in tensors.items():
            value = saved[name]
            if value.numel() != target.numel():
                raise ValueError(f"{name}: {tuple(value.shape)} saved, {tuple(target.shape)} here")
            value = value.reshape(target.shape).to(target.dtype)
            if name.startswith("preprocessor."):
                diff = (value.double() - target.double()).abs()
                replaced[name] = float(diff.max()) if diff.numel() else 0.0
            target.copy_(value)
    return {"loaded": len(saved), "replaced_max_abs": replaced}


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


@dataclass
class Checkable:
    """What the ``save_init`` / ``load_init`` / ``check`` commands need from a worker.

    ``tensors()``: shared name -> live tensor (:func:`model_tensors`); ``grads()``: shared name
    -> gradient; ``check_mode(on)``: dither 0 and no spectrogram augmentation while ``on``;
    ``loss_and_lengths()``: one training-mode forward pass, the loss and the encoder's output
    lengths; ``reset_optimizer()``: a fresh optimizer (after new weights).
    """

    tensors: Callable[[], dict[str, torch.Tensor]]
    grads: Callable[[], dict[str, torch.Tensor]]
    check_mode: Callable[[bool], None]
    loss_and_lengths: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    zero_grad: Callable[[], None]
    reset_optimizer: Callable[[], None]


def check_commands(c: Checkable) -> dict[str, Callable[[str], dict[str, Any]]]:
    """The ``save_init``, ``load_init`` and ``check`` commands over ``c``."""

    def save_init(path: str) -> dict[str, Any]:
        return {"saved": save_shared(c.tensors(), path)}

    def load_init(path: str) -> dict[str, Any]:
        reply = load_shared(c.tensors(), path)
        c.zero_grad()
        c.reset_optimizer()
        return reply

    def check(path: str) -> dict[str, Any]:
        c.zero_grad()
        c.check_mode(True)
        try:
            loss, lengths = c.loss_and_lengths()
            loss.backward()
        finally:
            c.check_mode(False)
        grads = c.grads()
        save_shared(grads, path)
        c.zero_grad()
        return {"loss": float(loss.detach()), "encoded_lengths": lengths.tolist(),
                "grads": len(grads)}

    return {"save_init": save_init, "load_init": load_init, "check": check}


def serve_module(
    name: str,
    build: Callable[[], torch.nn.Module],
    versions: dict[str, str],
    info: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
    out: TextIO | None = None,
    more_commands: Callable[[Any, Batch], dict[str, Callable[[str], dict[str, Any]]]]
    | None = None,
) -> None:
    """Serve a module built by ``build()`` (called after the batch is made and the seed set to
    0) whose ``forward(batch)`` is the loss, ``outputs(batch)`` the loss and the encoder's
    output lengths, ``features(batch)`` the preprocessor, ``tensors()`` its shared weights and
    ``check_mode(on)`` switches dither and spectrogram augmentation off while ``on``.
    ``more_commands(model, batch)``: further one-argument commands."""
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

    def reset_optimizer() -> None:
        nonlocal opt
        opt = make_optimizer(model.parameters())

    checkable = Checkable(
        tensors=model.tensors,  # type: ignore[arg-type, operator]
        grads=lambda: model_grads(model),
        check_mode=model.check_mode,  # type: ignore[arg-type]
        loss_and_lengths=lambda: model.outputs(batch),  # type: ignore[operator]
        zero_grad=lambda: opt.zero_grad(set_to_none=True),
        reset_optimizer=reset_optimizer,
    )
    extra = info(model) if info is not None else None
    commands = check_commands(checkable)
    if more_commands is not None:
        commands.update(more_commands(model, batch))
    serve(name, count_params(model), versions, step, preproc, extra, out=out, commands=commands)


def serve(
    name: str,
    params: int,
    versions: dict[str, str],
    step: Callable[[], float],
    preproc: Callable[[], None],
    info: dict[str, Any] | None = None,
    out: TextIO | None = None,
    commands: dict[str, Callable[[str], dict[str, Any]]] | None = None,
) -> None:
    """Answers the driver's commands on stdin until ``quit`` or end of input.

    ``commands``: more commands taking one argument (a path), e.g. :func:`check_commands`.
    """
    out = out if out is not None else sys.stdout
    commands = commands or {}
    hello = {
        "ready": True,
        "name": name,
        "params": params,
        "versions": versions,
        "threads": torch.get_num_threads(),
        "spec_augment": spec_augment_on(),
        "commands": sorted(commands),
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
            if words[0] in commands:
                if len(words) != 2:
                    raise ValueError(f"{words[0]} takes one argument (a path)")
                print(json.dumps(commands[words[0]](words[1])), file=out, flush=True)
                continue
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
