"""Entry point of the ``asr`` plugin: registers its modules, data sources, metrics and commands.

It uses only the public API of neuralgraph and of the shared audio and text homes
(``neuralgraph_audio``, whose own ``audio`` plugin registers the feature and augmentation nodes;
``neuralgraph_text``), exactly as a third-party plugin would.
"""

from __future__ import annotations

from typing import Any

from neuralgraph import hookimpl


@hookimpl
def register_modules(registry: Any) -> None:
    from neuralgraph_asr.conv import ConvASRDecoder, ConvASRDecoderClassification, ConvASREncoder

    for cls in (ConvASREncoder, ConvASRDecoder, ConvASRDecoderClassification):
        registry.add_module(cls)


@hookimpl
def register_losses(registry: Any) -> None:
    from neuralgraph_asr.losses import CrossEntropyLoss, CTCLoss

    registry.add_loss(CTCLoss)
    registry.add_loss(CrossEntropyLoss)


@hookimpl
def register_metrics(registry: Any) -> None:
    from neuralgraph_asr.metrics import WER, ClassificationAccuracy, TopKClassificationAccuracy

    for cls in (WER, ClassificationAccuracy, TopKClassificationAccuracy):
        registry.add_metric(cls)


@hookimpl
def register_data_sources(registry: Any) -> None:
    from neuralgraph_asr.data import (
        AudioToBPEDataset,
        AudioToCharDataset,
        AudioToClassificationLabelDataset,
    )

    for cls in (AudioToCharDataset, AudioToBPEDataset, AudioToClassificationLabelDataset):
        registry.add_data_source(cls)


@hookimpl
def register_commands(registry: Any) -> None:
    from neuralgraph_asr.commands import (
        configure_asr,
        configure_transcribe,
        run_asr,
        run_transcribe,
    )

    registry.add_command("transcribe", configure_transcribe, run_transcribe,
                         help="text for audio files, from a .ngm ASR archive")
    from neuralgraph_asr.classify_cli import configure_classify, run_classify  # no torch

    registry.add_command("classify", configure_classify, run_classify,
                         help="a label and its confidence for audio files, from a .ngm "
                              "classification archive (speech commands)")
    registry.add_command("asr", configure_asr, run_asr,
                         help="ASR tools: train a tokenizer, synthesize a corpus")
    from neuralgraph_asr.nemo_import import configure_import_nemo, run_import_nemo  # no torch

    registry.add_command("import-nemo", configure_import_nemo, run_import_nemo,
                         help="a NeMo .nemo checkpoint (QuartzNet, Jasper, MatchboxNet) as a "
                              ".ngm archive giving NeMo's outputs")
