"""Small NeMo models saved by NeMo itself, with NeMo's outputs on real audio: the fixtures of
``tests/asr/test_nemo_import.py``.

Run with NeMo's own environment (never a dependency of neuralgraph)::

    /work/nemo_venv/bin/python benchmarks/nemo_import/make_fixtures.py [--out tests/asr/data/nemo]

Everything is built offline from configs written below (no download): a character CTC
QuartzNet with few, narrow blocks; a BPE CTC model with a SentencePiece tokenizer trained here
on a few sentences; a MatchboxNet-style command classifier (MFCC; its config names a 128-frame
crop-or-pad, as MatchboxNet's do, which NeMo 3.0 builds but never applies).
Weights are NeMo's random initialization under a fixed seed, then the batch-norm statistics
and affine parameters are randomized too (so that a mapping that drops or swaps one of them
shows). Each model is saved with ``model.save_to(NAME.nemo)``; ``NAME.npz`` holds NeMo's
outputs in eval mode (dither off):

- ``single_<i>_*``: input ``i`` alone (batch of one): ``processed_length``, ``encoded_len``,
  ``log_probs`` (CTC) or ``logits`` (classification);
- ``batch_*``: the inputs ``BATCH`` in one zero-padded batch, the same outputs.

``quartznet_char_train.npz`` holds one TRAINING step of the character model, as NeMo computes it
(restored from the saved ``quartznet_char.nemo``; train mode, so batch norm uses the batch's
statistics; dither 0 and no spectrogram augmentation, so nothing is random): the inputs
``BATCH`` in one batch with the transcripts ``TRAIN_TEXTS``, NeMo's CTC loss (its default
``mean_batch`` reduction) after ``model.forward`` + ``model.loss``, and after one backward pass
the L2 norm of every parameter's gradient (``grad_norm/<name>``) and the whole gradient of the
tensors ``TRAIN_GRADS`` (``grad/<name>``). The same pass in float64 measures float32's own
noise (``train`` in ``inputs.json``). ``--train-only`` rewrites just this file from the
committed ``.nemo`` (the other fixtures stay byte for byte).

``inputs.json`` lists the inputs (an audio file, an optional ``offset`` and number of
``samples``) and is shared by all models: three cuts of the repository's held-out digits (one
whole file with silent ends, one cut inside the speech so that the STFT's edge padding matters,
at a multiple of the hop) and, when Debian's ``pocketsphinx-testdata`` is installed, one real
recording (LibriVox), marked ``optional`` (the test skips it where the package is missing).
NeMo reads the audio with soundfile here, as the test does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]
SEED = 1234
CHAR_LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown",
            "silence"]

# Repository-relative audio; "samples" truncates (a length that is a multiple of the 160-sample
# hop is the case where frame-count conventions differ most).
INPUTS = [
    {"file": "examples/asr/data/digits/heldout/00000.flac"},
    {"file": "examples/asr/data/digits/heldout/00001.flac"},
    {"file": "examples/asr/data/digits/heldout/00002.flac", "offset": 3000, "samples": 13600},
    {"file": "/usr/share/pocketsphinx/test/data/librivox/"
             "sense_and_sensibility_01_austen_64kb-0880.wav", "optional": True},
]
BATCH = [0, 1, 2]
# Transcripts of BATCH for the training step (the cut 00002 keeps "three one" of "three one six").
TRAIN_TEXTS = ["six three nine nine", "seven one", "three one"]
# Gradients kept whole: the decoder, the first depthwise conv, a residual 1x1 conv, a batch
# norm's scale and the dilated depthwise conv (k 87, dilation 2: our polyphase path).
TRAIN_GRADS = [
    "decoder.decoder_layers.0.weight",
    "encoder.encoder.0.mconv.0.conv.weight",
    "encoder.encoder.1.res.0.0.conv.weight",
    "encoder.encoder.2.mconv.2.weight",
    "encoder.encoder.3.mconv.0.conv.weight",
]

TOKENIZER_TEXT = [
    "seven of clubs", "the quick brown fox jumps over the lazy dog",
    "he was not an ill disposed young man", "go forward ten meters", "it's a lovely day",
    "one two three four five six seven eight nine zero oh", "stop the music and go home",
    "nine eight seven six five four three two one", "a lovely quick young dog",
]


def jasper_block(filters: int, kernel: int, *, repeat: int = 1, stride: int = 1,
                 dilation: int = 1, residual: bool = False, separable: bool = True,
                 **extra: object) -> dict[str, object]:
    return {"filters": filters, "repeat": repeat, "kernel": [kernel], "stride": [stride],
            "dilation": [dilation], "dropout": 0.0, "residual": residual,
            "separable": separable, **extra}


def char_config() -> dict:
    """QuartzNet's layout at toy size: C1 stride 2, two residual groups, C2 dilated, C3 1x1."""
    return {
        "sample_rate": 16000,
        "labels": CHAR_LABELS,
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "normalize": "per_feature", "window_size": 0.02, "sample_rate": 16000,
            "window_stride": 0.01, "window": "hann", "features": 64, "n_fft": 512,
            "frame_splicing": 1, "dither": 0.00001,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "rect_freq": 50, "rect_masks": 5, "rect_time": 120,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConvASREncoder",
            "feat_in": 64, "activation": "relu", "conv_mask": True,
            "jasper": [
                jasper_block(48, 33, stride=2),
                jasper_block(48, 33, repeat=2, residual=True),
                jasper_block(64, 39, repeat=2, residual=True),
                jasper_block(64, 87, dilation=2),
                jasper_block(96, 1, separable=False),
            ],
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 96, "num_classes": len(CHAR_LABELS), "vocabulary": CHAR_LABELS,
        },
        "optim": {"name": "novograd", "lr": 0.01, "betas": [0.8, 0.5], "weight_decay": 0.001},
    }


def bpe_config(tokenizer_dir: str) -> dict:
    """Other settings than the char model: 80 features, 25 ms windows, swish, a
    squeeze-excite block, a block-level stride."""
    return {
        "sample_rate": 16000,
        "tokenizer": {"dir": tokenizer_dir, "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "normalize": "per_feature", "window_size": 0.025, "sample_rate": 16000,
            "window_stride": 0.01, "window": "hann", "features": 80, "n_fft": 512,
            "frame_splicing": 1, "dither": 0.00001,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConvASREncoder",
            "feat_in": 80, "activation": "swish", "conv_mask": True,
            "jasper": [
                jasper_block(48, 11, stride=2),
                jasper_block(48, 13, repeat=2, residual=True, se=True, se_reduction_ratio=8),
                jasper_block(64, 15, repeat=2, residual=True, stride=2, stride_last=True,
                             residual_mode="stride_add"),
                jasper_block(96, 1, separable=False),
            ],
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": 96, "num_classes": -1, "vocabulary": [],
        },
        "optim": {"name": "adamw", "lr": 0.001},
    }


def classifier_config() -> dict:
    """MatchboxNet 3x1x64's layout at toy size (MFCC, crop or pad to 128 frames)."""
    return {
        "sample_rate": 16000,
        "labels": COMMANDS,
        "timesteps": 128,
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMFCCPreprocessor",
            "window_size": 0.025, "window_stride": 0.01, "window": "hann", "n_mels": 64,
            "n_mfcc": 64, "n_fft": 512,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2, "time_masks": 2, "freq_width": 15, "time_width": 25,
            "rect_masks": 5, "rect_time": 25, "rect_freq": 15,
        },
        "crop_or_pad_augment": {
            "_target_": "nemo.collections.asr.modules.CropOrPadSpectrogramAugmentation",
            "audio_length": 128,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConvASREncoder",
            "feat_in": 64, "activation": "relu", "conv_mask": True,
            "jasper": [
                jasper_block(32, 11),
                jasper_block(32, 13, residual=True),
                jasper_block(32, 15, residual=True),
                jasper_block(32, 29, dilation=2),
                jasper_block(64, 1, separable=False),
            ],
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoderClassification",
            "feat_in": 64, "num_classes": len(COMMANDS), "return_logits": True,
            "pooling_type": "avg",
        },
        "optim": {"name": "sgd", "lr": 0.01},
    }


def train_tokenizer(directory: Path) -> None:
    """A 40-piece SentencePiece BPE model, with the vocab files NeMo's tokenizer script writes."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_TEXT * 4), model_prefix=str(directory / "tokenizer"),
        vocab_size=40, model_type="bpe", character_coverage=1.0, bos_id=-1, eos_id=-1,
        normalization_rule_name="identity", num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    (directory / "vocab.txt").write_text("".join(f"{p}\n" for p in pieces), encoding="utf-8")


def randomize_norms(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Batch-norm running statistics and affine parameters drawn at random (fixed seed)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                module.weight.copy_(1 + 0.2 * torch.randn(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))


def read_input(item: dict) -> np.ndarray | None:
    path = ROOT / item["file"]
    if item.get("optional") and not path.is_file():
        return None
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and audio.ndim == 1, item
    start = item.get("offset", 0)
    return audio[start: start + item["samples"] if "samples" in item else None]


def batch(signals: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in signals])
    x = torch.zeros(len(signals), int(lengths.max()))
    for row, s in enumerate(signals):
        x[row, : len(s)] = torch.from_numpy(s)
    return x, lengths


@torch.no_grad()
def reference(model: torch.nn.Module, signals: list[np.ndarray | None],
              kind: str) -> dict[str, np.ndarray]:
    """NeMo's outputs for each input alone and for the inputs BATCH in one batch."""
    out: dict[str, np.ndarray] = {}
    runs = [(f"single_{i}", [s]) for i, s in enumerate(signals) if s is not None]
    runs.append(("batch", [signals[i] for i in BATCH]))
    for name, group in runs:
        x, n = batch(group)
        _, processed_length = model.preprocessor(input_signal=x, length=n)
        out[f"{name}_processed_length"] = processed_length.numpy()
        if kind == "classification":
            logits = model.forward(input_signal=x, input_signal_length=n)
            out[f"{name}_logits"] = logits.numpy().astype(np.float32)
        else:
            log_probs, encoded_len, _ = model.forward(input_signal=x, input_signal_length=n)
            out[f"{name}_log_probs"] = log_probs.numpy().astype(np.float32)
            out[f"{name}_encoded_len"] = encoded_len.numpy()
    return out


def train_targets() -> tuple[torch.Tensor, torch.Tensor]:
    """TRAIN_TEXTS as character indices (B, U), zero-padded, and their lengths (B,)."""
    ids = [[CHAR_LABELS.index(c) for c in text] for text in TRAIN_TEXTS]
    lengths = torch.tensor([len(i) for i in ids])
    targets = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, i in enumerate(ids):
        targets[row, : len(i)] = torch.tensor(i)
    return targets, lengths


def training_step(path: Path, signals: list[np.ndarray | None],
                  dtype: torch.dtype) -> tuple[float, list[int], dict[str, torch.Tensor]]:
    """NeMo's loss, encoded lengths and gradients for one training step of the saved model
    ``path`` on the inputs BATCH (train mode, dither 0, no spectrogram augmentation)."""
    from nemo.collections.asr.models import EncDecCTCModel

    model = EncDecCTCModel.restore_from(str(path), map_location="cpu").to(dtype).train()
    model.preprocessor.featurizer.dither = 0.0
    model.spec_augmentation = None  # EncDecCTCModel.forward applies it only when set
    x, n = batch([signals[i] for i in BATCH])
    targets, target_lengths = train_targets()
    model.zero_grad(set_to_none=True)
    log_probs, encoded_len, _ = model.forward(input_signal=x.to(dtype), input_signal_length=n)
    loss = model.loss(log_probs=log_probs, targets=targets, input_lengths=encoded_len,
                      target_lengths=target_lengths)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()
             if p.grad is not None}
    return float(loss.detach()), encoded_len.tolist(), grads


def training_reference(path: Path, signals: list[np.ndarray | None]
                       ) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The ``*_train.npz`` arrays (float32 step) and a summary with float32's own noise (the
    largest per-tensor relative L2 distance between the float32 and float64 gradients)."""
    loss, encoded_len, grads = training_step(path, signals, torch.float32)
    loss64, _, grads64 = training_step(path, signals, torch.float64)
    targets, target_lengths = train_targets()
    out: dict[str, np.ndarray] = {
        "loss": np.float64(loss), "encoded_len": np.array(encoded_len),
        "targets": targets.numpy(), "target_lengths": target_lengths.numpy(),
    }
    for name, g in grads.items():
        out[f"grad_norm/{name}"] = np.float64(g.double().norm())
    for name in TRAIN_GRADS:
        out[f"grad/{name}"] = grads[name].numpy().astype(np.float32)
    noise = max((float((grads[k].double() - grads64[k]).norm() / grads64[k].norm()), k)
                for k in grads64)
    summary = {"texts": TRAIN_TEXTS, "loss": loss, "loss_float64": loss64,
               "encoded_len": encoded_len, "grad_tensors": len(grads),
               "whole_grads": TRAIN_GRADS,
               "float32_vs_float64_max_rel_l2": noise[0], "float32_vs_float64_worst": noise[1]}
    return out, summary


def write_training_reference(out: Path, summary: dict) -> None:
    """``quartznet_char_train.npz`` from ``out/quartznet_char.nemo``; its summary in ``summary``."""
    signals = [read_input(item) for item in INPUTS]
    refs, info = training_reference(out / "quartznet_char.nemo", signals)
    np.savez_compressed(out / "quartznet_char_train.npz", **refs)
    info["npz_bytes"] = os.path.getsize(out / "quartznet_char_train.npz")
    summary["train"] = {"model": "quartznet_char", **info}
    print("quartznet_char_train", info, flush=True)


def build(kind: str, work: Path):
    from nemo.collections.asr.models import (
        EncDecClassificationModel,
        EncDecCTCModel,
        EncDecCTCModelBPE,
    )

    if kind == "char":
        return EncDecCTCModel(cfg=OmegaConf.create(char_config()))
    if kind == "bpe":
        tokenizer_dir = work / "tokenizer"
        tokenizer_dir.mkdir()
        train_tokenizer(tokenizer_dir)
        return EncDecCTCModelBPE(cfg=OmegaConf.create(bpe_config(str(tokenizer_dir))))
    return EncDecClassificationModel(cfg=OmegaConf.create(classifier_config()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "tests/asr/data/nemo"))
    parser.add_argument("--train-only", action="store_true",
                        help="only quartznet_char_train.npz, from the committed "
                             "quartznet_char.nemo (updates 'train' in inputs.json)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import nemo

    torch.set_num_threads(1)
    if args.train_only:
        summary = json.loads((out / "inputs.json").read_text(encoding="utf-8"))
        write_training_reference(out, summary)
        (out / "inputs.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        return
    summary = {"nemo_version": nemo.__version__, "torch_version": torch.__version__,
               "inputs": INPUTS, "batch": BATCH, "models": {}}
    for name, kind in (("quartznet_char", "char"), ("quartznet_bpe", "bpe"),
                       ("matchboxnet", "classification")):
        random.seed(SEED)
        np.random.seed(SEED)
        torch.manual_seed(SEED)
        with tempfile.TemporaryDirectory() as tmp:
            model = build(kind, Path(tmp))
            randomize_norms(model, torch.Generator().manual_seed(SEED))
            model.eval()
            if hasattr(model.preprocessor.featurizer, "dither"):  # the mel featurizer's
                model.preprocessor.featurizer.dither = 0.0
            refs = reference(model, [read_input(item) for item in INPUTS], kind)
            path = out / f"{name}.nemo"
            model.save_to(str(path))
        np.savez_compressed(out / f"{name}.npz", **refs)
        params = sum(p.numel() for p in model.parameters())
        summary["models"][name] = {
            "class": type(model).__name__, "parameters": params,
            "nemo_bytes": os.path.getsize(path),
            "npz_bytes": os.path.getsize(out / f"{name}.npz"),
        }
        print(name, summary["models"][name], flush=True)
    write_training_reference(out, summary)
    (out / "inputs.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
