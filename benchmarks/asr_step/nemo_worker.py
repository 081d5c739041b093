"""Benchmark worker: QuartzNet 5x5 built from NVIDIA NeMo's own ASR modules, NeMo defaults.

Runs under NeMo's venv (the repository's ``.nemo-venv/bin/python`` or ``--nemo-python``, see
README.md), never neuralgraph's: NeMo is not a dependency of neuralgraph. The modules are the
ones NeMo's ``EncDecCTCModel`` wires (preprocessor → encoder → decoder → CTC loss), called
directly, without Lightning, with the same optimizer as the other workers. Protocol: see
``common.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


class NemoModel(torch.nn.Module):
    """NeMo's preprocessor, ConvASREncoder, ConvASRDecoder and CTCLoss, NeMo defaults."""

    def __init__(self) -> None:
        super().__init__()
        from nemo.collections.asr.losses.ctc import CTCLoss
        from nemo.collections.asr.modules import (
            AudioToMelSpectrogramPreprocessor,
            ConvASRDecoder,
            ConvASREncoder,
        )

        self.preprocessor = AudioToMelSpectrogramPreprocessor()
        self.encoder = ConvASREncoder(
            jasper=common.QUARTZNET_5X5, activation="relu", feat_in=common.FEAT_IN
        )
        self.decoder = ConvASRDecoder(feat_in=1024, num_classes=common.NUM_LABELS)
        self.ctc = CTCLoss(num_classes=common.NUM_LABELS)
        self.spec_augment: torch.nn.Module | None = None
        if common.spec_augment_on():
            from nemo.collections.asr.modules import SpectrogramAugmentation

            self.spec_augment = SpectrogramAugmentation(**common.SPEC_AUGMENT)
        self.checking = False
        self.dither = self.preprocessor.featurizer.dither

    def check_mode(self, on: bool) -> None:
        """Dither 0 and no spectrogram augmentation while ``on`` (the equivalence check)."""
        self.checking = on
        self.preprocessor.featurizer.dither = 0.0 if on else self.dither

    def tensors(self) -> dict[str, torch.Tensor]:
        """Shared name -> live tensor: NeMo's state dict (its keys are the shared names)."""
        return common.model_tensors(self)

    def features(self, batch: common.Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """processed_signal (B, 64, T_frames) and processed_length (B,)."""
        return self.preprocessor(input_signal=batch.audio_signal, length=batch.audio_length)

    def forward(self, batch: common.Batch) -> torch.Tensor:
        """The scalar CTC loss of ``batch`` (as EncDecCTCModel.forward + training_step)."""
        return self.outputs(batch)[0]

    def outputs(self, batch: common.Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar CTC loss of ``batch`` and the encoder's output lengths."""
        signal, length = self.features(batch)
        if self.spec_augment is not None and self.training and not self.checking:
            signal = self.spec_augment(input_spec=signal, length=length)
        encoded, encoded_len = self.encoder(audio_signal=signal, length=length)
        log_probs = self.decoder(encoder_output=encoded)
        loss = self.ctc(
            log_probs=log_probs,
            targets=batch.transcripts,
            input_lengths=encoded_len,
            target_lengths=batch.transcript_length,
        )
        return loss, encoded_len


def main() -> None:
    """Builds NeMo's model and serves the driver's commands."""
    out = common.protocol_channel()
    common.setup_threads()
    import nemo

    versions = {"torch": torch.__version__, "nemo": nemo.__version__}
    common.serve_module(
        "nemo", NemoModel, versions,
        info=lambda model: {"ctc_reduction": getattr(model.ctc, "config_reduction", None)},
        out=out,
    )


if __name__ == "__main__":
    main()
