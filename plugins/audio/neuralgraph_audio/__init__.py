"""neuralgraph's shared audio home: reading, features, augmentation, manifests and batching.

Used by every domain that reads audio (ASR, speech commands and VAD, TTS), as NeMo keeps such
code in its ``collections/common``. The public surface is this module's ``__all__``; names load
lazily, so that importing one (``read_manifest``) does not import torchaudio.

================================  ===========================================================
``read_audio``, ``trim_silence``, ``crop_or_pad``
                                  mono float32 ``(T,)`` waveforms at a chosen rate, trimmed,
                                  or made a fixed length (io.py)
``AudioToMelSpectrogramPreprocessor``, ``AudioToMFCCPreprocessor``
                                  NeMo's featurizers: ``(B, T)`` audio -> ``(B, D, T')``
                                  features + ``(B,)`` frames (features.py)
``SpectrogramAugmentation``, ``VocalTractLengthPerturbation``, ``AudioAugmentor``,
``formant_shift``                 training-time augmentation (augment.py)
``NoiseFiles``, ``NoiseClips``, ``coloured_noise``, ``mix_at_snr``
                                  background noise: recordings from a manifest or folder,
                                  coloured noise, mixing at an SNR, noise-only clips (noise.py)
``read_manifest``, ``validate_manifest``, ``ManifestEntry``
                                  NeMo JSON-lines manifests, checked before training
                                  (manifest.py)
``PadCollate``, ``DurationBucketBatchSampler``
                                  padding and length bucketing (batching.py)
``AudioDataset``, ``AudioDataSource``
                                  the data set and the base class of audio data sources
                                  (dataset.py)
================================  ===========================================================

The graph nodes among them (preprocessors and spectrogram augmentations) are registered by this
package's own plugin, ``audio`` (``neuralgraph_audio.plugin``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuralgraph_audio.augment import (
        AudioAugmentor,
        SpectrogramAugmentation,
        VocalTractLengthPerturbation,
        formant_shift,
        vtlp_source_bins,
    )
    from neuralgraph_audio.batching import DurationBucketBatchSampler, PadCollate
    from neuralgraph_audio.dataset import AudioDataset, AudioDataSource, CorruptAudioError
    from neuralgraph_audio.features import (
        AudioToMelSpectrogramPreprocessor,
        AudioToMFCCPreprocessor,
        hz_to_mel,
        mel_to_hz,
        valid_frames,
    )
    from neuralgraph_audio.io import crop_or_pad, read_audio, trim_silence
    from neuralgraph_audio.manifest import (
        ManifestEntry,
        ManifestReport,
        format_problems,
        read_manifest,
        resolve_audio_path,
        validate_manifest,
    )
    from neuralgraph_audio.noise import NoiseClips, NoiseFiles, coloured_noise, mix_at_snr

_LAZY = {
    "read_audio": "io",
    "trim_silence": "io",
    "crop_or_pad": "io",
    "NoiseClips": "noise",
    "NoiseFiles": "noise",
    "coloured_noise": "noise",
    "mix_at_snr": "noise",
    "AudioToMelSpectrogramPreprocessor": "features",
    "AudioToMFCCPreprocessor": "features",
    "hz_to_mel": "features",
    "mel_to_hz": "features",
    "valid_frames": "features",
    "AudioAugmentor": "augment",
    "SpectrogramAugmentation": "augment",
    "VocalTractLengthPerturbation": "augment",
    "formant_shift": "augment",
    "vtlp_source_bins": "augment",
    "ManifestEntry": "manifest",
    "ManifestReport": "manifest",
    "format_problems": "manifest",
    "read_manifest": "manifest",
    "resolve_audio_path": "manifest",
    "validate_manifest": "manifest",
    "PadCollate": "batching",
    "DurationBucketBatchSampler": "batching",
    "AudioDataset": "dataset",
    "AudioDataSource": "dataset",
    "CorruptAudioError": "dataset",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # io
    "read_audio",
    "trim_silence",
    "crop_or_pad",
    # background noise
    "NoiseClips",
    "NoiseFiles",
    "coloured_noise",
    "mix_at_snr",
    # features
    "AudioToMelSpectrogramPreprocessor",
    "AudioToMFCCPreprocessor",
    "hz_to_mel",
    "mel_to_hz",
    "valid_frames",
    # augmentation
    "AudioAugmentor",
    "SpectrogramAugmentation",
    "VocalTractLengthPerturbation",
    "formant_shift",
    "vtlp_source_bins",
    # manifests
    "ManifestEntry",
    "ManifestReport",
    "format_problems",
    "read_manifest",
    "resolve_audio_path",
    "validate_manifest",
    # batching
    "DurationBucketBatchSampler",
    "PadCollate",
    # data sets and sources
    "AudioDataSource",
    "AudioDataset",
    "CorruptAudioError",
]
