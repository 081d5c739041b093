"""Benchmark worker: QuartzNet 5x5 as hand-written plain PyTorch over neuralgraph_asr's modules.

Runs under neuralgraph's venv (``/work/main/.venv/bin/python``); no graph, no Lightning: the
modules are called directly, like a user would without neuralgraph's graph layer. Protocol: see
``common.py``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def ports(module: torch.nn.Module, result: Any) -> dict[str, torch.Tensor]:
    """A module's forward result as ``{output port: tensor}`` (tensor, tuple or dict results)."""
    if isinstance(result, dict):
        return result
    names = list(module.output_types)  # type: ignore[attr-defined]
    if isinstance(result, torch.Tensor):
        return {names[0]: result}
    return dict(zip(names, result, strict=True))


class PlainModel(torch.nn.Module):
    """Preprocessor → encoder → decoder → CTC loss, wired by hand."""

    def __init__(self) -> None:
        super().__init__()
        from neuralgraph_asr.conv import ConvASRDecoder, ConvASREncoder
        from neuralgraph_asr.losses import CTCLoss
        from neuralgraph_audio import AudioToMelSpectrogramPreprocessor

        self.preprocessor = AudioToMelSpectrogramPreprocessor(**common.framing_params())
        self.encoder = ConvASREncoder(
            jasper=common.QUARTZNET_5X5, activation="relu", feat_in=common.FEAT_IN
        )
        self.decoder = ConvASRDecoder(feat_in=1024, num_classes=common.NUM_LABELS)
        self.ctc = CTCLoss(num_classes=common.NUM_LABELS)
        self.spec_augment: torch.nn.Module | None = None
        if common.spec_augment_on():
            from neuralgraph_audio import SpectrogramAugmentation

            self.spec_augment = SpectrogramAugmentation(**common.SPEC_AUGMENT)
        self.checking = False
        self.dither = self.preprocessor.dither

    def check_mode(self, on: bool) -> None:
        """Dither 0 and no spectrogram augmentation while ``on`` (the equivalence check)."""
        self.checking = on
        self.preprocessor.dither = 0.0 if on else self.dither

    def tensors(self) -> dict[str, torch.Tensor]:
        """Shared (NeMo) name -> live tensor: the state dict and the preprocessor's buffers."""
        return common.model_tensors(self, preprocessor=self.preprocessor)

    def features(self, batch: common.Batch) -> dict[str, torch.Tensor]:
        """Mel features: processed_signal (B, 64, T_frames), processed_length (B,)."""
        res = self.preprocessor(input_signal=batch.audio_signal, length=batch.audio_length)
        return ports(self.preprocessor, res)

    def forward(self, batch: common.Batch) -> torch.Tensor:
        """The scalar CTC loss of ``batch``."""
        return self.outputs(batch)[0]

    def outputs(self, batch: common.Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar CTC loss of ``batch`` and the encoder's output lengths."""
        feats = self.features(batch)
        signal, length = feats["processed_signal"], feats["processed_length"]
        if self.spec_augment is not None and self.training and not self.checking:
            aug = self.spec_augment(input_spec=signal, length=length)
            signal = ports(self.spec_augment, aug)["augmented_spec"]
        enc = ports(self.encoder, self.encoder(audio_signal=signal, length=length))
        dec = ports(self.decoder, self.decoder(encoder_output=enc["outputs"]))
        loss = self.ctc(
            log_probs=dec["logprobs"],
            targets=batch.transcripts,
            input_lengths=enc["encoded_lengths"],
            target_lengths=batch.transcript_length,
        )
        return ports(self.ctc, loss)["loss"], enc["encoded_lengths"]


def check_fp64(model: PlainModel, batch: common.Batch, path: str) -> dict[str, Any]:
    """The ``check`` pass with the encoder, decoder and CTC loss in float64: the reference that
    shows how far float32 gradients are from exact ones (the noise floor of the comparison).

    The features are the float32 model's (dither 0), cast to float64; the loss is
    ``F.ctc_loss`` in float64 with NeMo's ``mean_batch`` reduction. The gradients (shared
    names, float64) go to ``path``; the served model is not touched.
    """
    twin = copy.deepcopy(model).double().train()
    model.check_mode(True)
    try:
        with torch.no_grad():
            feats = model.features(batch)
    finally:
        model.check_mode(False)
    signal, length = feats["processed_signal"].double(), feats["processed_length"]
    enc = ports(twin.encoder, twin.encoder(audio_signal=signal, length=length))
    dec = ports(twin.decoder, twin.decoder(encoder_output=enc["outputs"]))
    losses = F.ctc_loss(
        dec["logprobs"].transpose(0, 1),
        batch.transcripts,
        enc["encoded_lengths"],
        batch.transcript_length,
        blank=common.NUM_LABELS,
        reduction="none",
        zero_infinity=True,
    )
    loss = losses.mean()
    loss.backward()
    grads = common.model_grads(twin)
    common.save_shared(grads, path)
    return {"loss": float(loss.detach()), "encoded_lengths": enc["encoded_lengths"].tolist(),
            "grads": len(grads)}


def main() -> None:
    """Builds the model and serves the driver's commands."""
    out = common.protocol_channel()
    common.setup_threads()
    import neuralgraph

    versions = {"torch": torch.__version__, "neuralgraph": neuralgraph.__version__}
    common.serve_module(
        "plain",
        PlainModel,
        versions,
        info=lambda _: {"framing": common.framing()},
        out=out,
        more_commands=lambda model, batch: {
            "check_fp64": lambda path: check_fp64(model, batch, path)  # type: ignore[arg-type]
        },
    )


if __name__ == "__main__":
    main()
