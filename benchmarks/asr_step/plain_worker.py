"""Benchmark worker: QuartzNet 5x5 as hand-written plain PyTorch over neuralgraph_asr's modules.

Runs under neuralgraph's venv (``/work/main/.venv/bin/python``); no graph, no Lightning: the
modules are called directly, like a user would without neuralgraph's graph layer. Protocol: see
``common.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

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

        self.preprocessor = AudioToMelSpectrogramPreprocessor()
        self.encoder = ConvASREncoder(
            jasper=common.QUARTZNET_5X5, activation="relu", feat_in=common.FEAT_IN
        )
        self.decoder = ConvASRDecoder(feat_in=1024, num_classes=common.NUM_LABELS)
        self.ctc = CTCLoss(num_classes=common.NUM_LABELS)
        self.spec_augment: torch.nn.Module | None = None
        if common.spec_augment_on():
            from neuralgraph_audio import SpectrogramAugmentation

            self.spec_augment = SpectrogramAugmentation(**common.SPEC_AUGMENT)

    def features(self, batch: common.Batch) -> dict[str, torch.Tensor]:
        """Mel features: processed_signal (B, 64, T_frames), processed_length (B,)."""
        res = self.preprocessor(input_signal=batch.audio_signal, length=batch.audio_length)
        return ports(self.preprocessor, res)

    def forward(self, batch: common.Batch) -> torch.Tensor:
        """The scalar CTC loss of ``batch``."""
        feats = self.features(batch)
        signal, length = feats["processed_signal"], feats["processed_length"]
        if self.spec_augment is not None and self.training:
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
        return ports(self.ctc, loss)["loss"]


def main() -> None:
    """Builds the model and serves the driver's commands."""
    out = common.protocol_channel()
    common.setup_threads()
    import neuralgraph

    versions = {"torch": torch.__version__, "neuralgraph": neuralgraph.__version__}
    common.serve_module("plain", PlainModel, versions, out=out)


if __name__ == "__main__":
    main()
