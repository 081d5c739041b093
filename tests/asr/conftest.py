"""Fixtures for the ASR data tests: short real utterances synthesized with espeak-ng.

The corpus is made once per session (about half a second): 16 kHz mono FLAC files under
``audio/`` and a NeMo manifest with paths relative to its folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

SAMPLE_RATE = 16000
CHAR_LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")

# (text, espeak-ng voice, words per minute)
UTTERANCES = [
    ("seven of clubs", "en-us", 170),
    ("the quick brown fox jumps over the lazy dog", "en", 190),
    ("he was not an ill disposed young man", "en-us+f3", 160),
    ("go forward ten meters", "en+m3", 175),
    ("it's a lovely day isn't it", "en-gb", 180),
    ("stop", "en-us+f2", 150),
]


@attrs.frozen
class Corpus:
    """A synthesized corpus: its folder, manifest, and per-utterance text, file and duration."""

    root: Path
    manifest: Path
    texts: list[str]
    files: list[Path]
    durations: list[float]


def write_manifest_lines(path: Path, items: Sequence[dict[str, Any] | str]) -> Path:
    """Write a JSON-lines manifest; strings are written verbatim (to make malformed lines)."""
    lines = [item if isinstance(item, str) else json.dumps(item) for item in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _synthesize(text: str, voice: str, speed: int, out: Path) -> float:
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    wav = out.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text],
                   check=True, capture_output=True)
    data, rate = sf.read(wav, dtype="float32")
    wav.unlink()
    samples = AF.resample(torch.from_numpy(data), rate, SAMPLE_RATE).numpy()
    sf.write(out, samples, SAMPLE_RATE, format="FLAC")
    return len(samples) / SAMPLE_RATE


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Six espeak-ng utterances as 16 kHz FLAC with a manifest using relative paths."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("asr_corpus")
    (root / "audio").mkdir()
    texts, files, durations, items = [], [], [], []
    for i, (text, voice, speed) in enumerate(UTTERANCES):
        path = root / "audio" / f"utt{i}.flac"
        duration = _synthesize(text, voice, speed, path)
        texts.append(text)
        files.append(path)
        durations.append(duration)
        items.append({"audio_filepath": f"audio/{path.name}", "duration": round(duration, 3),
                      "text": text})
    manifest = write_manifest_lines(root / "manifest.json", items)
    return Corpus(root, manifest, texts, files, durations)


@pytest.fixture(scope="session")
def char_labels() -> list[str]:
    """NeMo's English character labels: space, a-z, apostrophe."""
    return list(CHAR_LABELS)


@pytest.fixture
def write_manifest() -> Callable[[Path, Sequence[dict[str, Any] | str]], Path]:
    """A function writing manifest lines (dicts as JSON, strings verbatim) to a path."""
    return write_manifest_lines


@pytest.fixture(scope="session")
def librivox_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five LibriVox recordings of pocketsphinx-testdata with their transcripts."""
    folder = POCKETSPHINX / "librivox"
    if not (folder / "transcription").is_file():
        pytest.skip("pocketsphinx-testdata is not installed")
    import soundfile as sf

    items = []
    for line in (folder / "transcription").read_text().splitlines():
        words, _, name = line.rpartition("(")
        text = words.replace("<s>", "").replace("</s>", "").strip()
        audio = folder / f"{name.rstrip(')').strip()}.wav"
        items.append({"audio_filepath": str(audio), "duration": sf.info(audio).duration,
                      "text": text})
    return write_manifest_lines(tmp_path_factory.mktemp("librivox") / "manifest.json", items)


@pytest.fixture(scope="session")
def bpe_model(corpus: Corpus, librivox_manifest: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    """A 40-piece BPE tokenizer trained on the synthetic and LibriVox transcripts."""
    from neuralgraph_asr.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    return train_tokenizer([corpus.manifest, librivox_manifest], out, 40)


@pytest.fixture(scope="session")
def digits_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """A function giving a BPE tokenizer of the shipped digits training transcripts with the
    given vocabulary size, made once per size with `neuralgraph asr tokenizer` (as a user)."""
    from tests.conftest import ROOT, run_cli

    manifest = ROOT / "examples" / "asr" / "data" / "digits" / "train_manifest.json"
    made: dict[int, Path] = {}

    def make(vocab_size: int) -> Path:
        if vocab_size not in made:
            out = tmp_path_factory.mktemp(f"tok{vocab_size}")
            result = run_cli("asr", "tokenizer", "--manifest", str(manifest), "--vocab-size",
                             str(vocab_size), "--type", "bpe", "--out", str(out))
            assert result.returncode == 0, result.stderr
            made[vocab_size] = out / "tokenizer.model"
        return made[vocab_size]

    return make
