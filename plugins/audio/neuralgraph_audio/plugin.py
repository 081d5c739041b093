"""Entry point of the ``audio`` plugin: the shared audio graph nodes (features, augmentation).

Registered apart from any domain so that ASR, speech commands and TTS graphs name the same
``AudioToMelSpectrogramPreprocessor``; it uses only neuralgraph's public API.
"""

from __future__ import annotations

from typing import Any

from neuralgraph import hookimpl


@hookimpl
def register_modules(registry: Any) -> None:
    from neuralgraph_audio.augment import SpectrogramAugmentation, VocalTractLengthPerturbation
    from neuralgraph_audio.features import (
        AudioToMelSpectrogramPreprocessor,
        AudioToMFCCPreprocessor,
    )

    for cls in (AudioToMelSpectrogramPreprocessor, AudioToMFCCPreprocessor,
                SpectrogramAugmentation, VocalTractLengthPerturbation):
        registry.add_module(cls)
