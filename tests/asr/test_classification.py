"""Speech-commands pieces, each against an independent computation: the cross-entropy loss, the
accuracy metrics, fixed-length clips, the time shift, background-noise mixing and the generated
`silence` class of the classification data source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

import neuralgraph as ng
from neuralgraph import ParameterError, UserError
from neuralgraph_asr.data import AudioToClassificationLabelDataset
from neuralgraph_asr.losses import CrossEntropyLoss
from neuralgraph_asr.metrics import ClassificationAccuracy, TopKClassificationAccuracy
from neuralgraph_audio import (
    AudioAugmentor,
    NoiseClips,
    NoiseFiles,
    coloured_noise,
    crop_or_pad,
    mix_at_snr,
)

RATE = 16000


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def _tone(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, samples: np.ndarray) -> Path:
    sf.write(path, samples, RATE, format="FLAC" if path.suffix == ".flac" else "WAV")
    return path


def _manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _dominant_hz(x: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(x).abs()
    return float(spectrum.argmax()) * RATE / x.numel()


# --- the loss ---------------------------------------------------------------------------------


def _logits(seed: int = 0, batch: int = 7, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(batch, classes, generator=generator),
            torch.randint(0, classes, (batch,), generator=generator))


class TestCrossEntropyLoss:
    def test_mean_is_the_mean_negative_log_probability(self) -> None:
        """The default loss is the mean of -log softmax(logits)[label], computed by hand."""
        logits, labels = _logits()
        manual = -(logits.exp() / logits.exp().sum(-1, keepdim=True)).log()[
            torch.arange(len(labels)), labels].mean()
        assert torch.allclose(CrossEntropyLoss()(logits=logits, labels=labels), manual,
                              atol=1e-6)

    def test_label_smoothing(self) -> None:
        """label_smoothing e: (1 - e) * NLL + e * the mean over classes of -log p."""
        logits, labels = _logits(1)
        logp = logits.log_softmax(-1)
        nll = -logp[torch.arange(len(labels)), labels]
        manual = ((1 - 0.1) * nll + 0.1 * (-logp).mean(-1)).mean()
        loss = CrossEntropyLoss(label_smoothing=0.1)(logits=logits, labels=labels)
        assert torch.allclose(loss, manual, atol=1e-6)

    def test_weight_sum_none_and_ignore_index(self) -> None:
        """Class weights give a weighted mean; sum and none reduce as named; an ignored label
        contributes nothing."""
        logits, labels = _logits(2, classes=3)
        nll = -logits.log_softmax(-1)[torch.arange(len(labels)), labels]
        w = torch.tensor([1.0, 2.0, 0.5])
        weighted = CrossEntropyLoss(num_classes=3, weight=[1.0, 2.0, 0.5])(logits=logits,
                                                                           labels=labels)
        assert torch.allclose(weighted, (w[labels] * nll).sum() / w[labels].sum(), atol=1e-6)
        assert torch.allclose(CrossEntropyLoss(reduction="sum")(logits=logits, labels=labels),
                              nll.sum(), atol=1e-5)
        assert torch.allclose(CrossEntropyLoss(reduction="none")(logits=logits, labels=labels),
                              nll, atol=1e-6)
        ignored = labels.clone()
        ignored[0] = -100
        assert torch.allclose(CrossEntropyLoss()(logits=logits, labels=ignored),
                              nll[1:].mean(), atol=1e-6)

    def test_frames(self) -> None:
        """logits_ndim 3: (B, T, D) logits and (B, T) labels, the same as flattened."""
        logits, labels = _logits(3, batch=12, classes=4)
        loss = CrossEntropyLoss(logits_ndim=3)(logits=logits.reshape(3, 4, 4),
                                               labels=labels.reshape(3, 4))
        assert torch.allclose(loss, F.cross_entropy(logits, labels), atol=1e-6)

    def test_ports(self) -> None:
        """Logits (B, D=num_classes) LogitsType and labels (B,) LabelsType(num_classes) in,
        a scalar LossType out; without num_classes any size."""
        types = CrossEntropyLoss(num_classes=12).input_types
        assert str(types["logits"].axes[1].size) == "12"
        assert types["labels"].elements_type == ng.LabelsType(12)
        assert isinstance(CrossEntropyLoss().output_types["loss"].elements_type, ng.LossType)
        assert CrossEntropyLoss().input_types["logits"].axes[1].size is None

    @pytest.mark.parametrize(("params", "key"), [
        ({"logits_ndim": 4}, "logits_ndim"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"reduction": "mean_batch"}, "reduction"),
        ({"weight": ["a"]}, "weight"),
    ])
    def test_bad_parameters(self, params: dict, key: str) -> None:
        """A bad parameter is a ParameterError naming it."""
        with pytest.raises(ParameterError) as caught:
            CrossEntropyLoss(**params)
        assert caught.value.parameter.startswith(key)

    def test_weight_count(self) -> None:
        with pytest.raises(ValueError, match="weight must have num_classes"):
            CrossEntropyLoss(num_classes=3, weight=[1.0, 2.0])


# --- the metrics ------------------------------------------------------------------------------


class TestAccuracyMetrics:
    @pytest.mark.parametrize("top_k", [1, 2, 3])
    def test_top_k_matches_torchmetrics(self, top_k: int) -> None:
        """Over two batches, the ratio of sums equals torchmetrics' micro accuracy of all."""
        (a, la), (b, lb) = _logits(4, 9, 6), _logits(5, 4, 6)
        metric = TopKClassificationAccuracy(num_classes=6, top_k=top_k)
        metric.update(logits=a, labels=la)
        metric.update(logits=b, labels=lb)
        expected = multiclass_accuracy(torch.cat([a, b]), torch.cat([la, lb]), num_classes=6,
                                       top_k=top_k, average="micro")
        assert math.isclose(float(metric.compute()), float(expected), abs_tol=1e-6)
        topk = torch.cat([a, b]).topk(top_k, -1).indices
        by_hand = (topk == torch.cat([la, lb])[:, None]).any(-1).float().mean()
        assert math.isclose(float(metric.compute()), float(by_hand), abs_tol=1e-6)

    def test_per_class_details(self) -> None:
        """details(): per class, precision = right / predicted, recall = right / true, count."""
        logits, labels = _logits(6, 40, 3)
        metric = ClassificationAccuracy(labels=["a", "b", "c"])
        metric.update(logits=logits, labels=labels)
        predicted = logits.argmax(-1)
        table = metric.details()["per_class"]
        assert list(table) == ["a", "b", "c"]
        for c, name in enumerate("abc"):
            right = int(((predicted == c) & (labels == c)).sum())
            assert table[name]["count"] == int((labels == c).sum())
            assert math.isclose(table[name]["recall"], right / int((labels == c).sum()))
            assert math.isclose(table[name]["precision"], right / int((predicted == c).sum()))
        metric.reset()
        metric.update(logits=logits[:0], labels=labels[:0])
        assert float(metric.compute()) == 0.0

    def test_ports_and_parameters(self) -> None:
        """The logits' D is the number of classes; labels and num_classes must agree."""
        metric = ClassificationAccuracy(labels=["x", "y"])
        assert str(metric.input_types["logits"].axes[1].size) == "2"
        assert metric.input_types["labels"].elements_type == ng.LabelsType(2)
        with pytest.raises(ValueError, match="must equal the number of labels"):
            ClassificationAccuracy(num_classes=3, labels=["x", "y"])
        with pytest.raises(ValueError, match="give num_classes or labels"):
            ClassificationAccuracy()
        with pytest.raises(ParameterError, match="top_k"):
            TopKClassificationAccuracy(num_classes=3, top_k=4)


# --- fixed length, shift, noise ---------------------------------------------------------------


class TestCropOrPad:
    def test_evaluation_is_central(self) -> None:
        """A long clip loses the same number of samples at each end; a short one is padded
        with zeros split evenly (the odd one at the end)."""
        x = torch.arange(1.0, 11.0)
        assert crop_or_pad(x, 6).tolist() == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
        assert crop_or_pad(x[:3], 6).tolist() == [0.0, 1.0, 2.0, 3.0, 0.0, 0.0]
        assert crop_or_pad(x, 10) is x

    def test_training_is_random(self) -> None:
        """random=True crops at every position and pads at every split, seen over many draws,
        always keeping the samples in order."""
        x = torch.arange(1.0, 6.0)
        starts = {int(crop_or_pad(x, 3, random=True)[0]) for _ in range(200)}
        assert starts == {1, 2, 3}
        leads = {int((crop_or_pad(x, 8, random=True) == 0).cumprod(0).sum()) for _ in range(200)}
        assert leads == {0, 1, 2, 3}


class TestShiftAndNoise:
    def test_shift_moves_by_the_drawn_time(self) -> None:
        """shift +2 ms moves the audio 32 samples earlier (zeros come in at the end); -2 ms
        32 samples later; the length stays."""
        x = torch.arange(1.0, 201.0)
        early = AudioAugmentor({"shift": {"min_shift_ms": 2.0, "max_shift_ms": 2.0}}, RATE)(x)
        late = AudioAugmentor({"shift": {"min_shift_ms": -2.0, "max_shift_ms": -2.0}}, RATE)(x)
        assert early.shape == late.shape == x.shape
        assert early[:168].tolist() == x[32:].tolist() and early[168:].abs().sum() == 0
        assert late[32:].tolist() == x[:168].tolist() and late[:32].abs().sum() == 0

    def test_noise_from_a_manifest_at_the_snr(self, tmp_path: Path) -> None:
        """noise with manifest_path adds a segment of a listed file, scaled to the SNR."""
        _write(tmp_path / "hum.flac", _tone(440.0, 3.0))
        noise = _manifest(tmp_path / "noise.json", [{"audio_filepath": "hum.flac",
                                                     "duration": 3.0}])
        aug = AudioAugmentor({"noise": {"min_snr_db": 20.0, "max_snr_db": 20.0,
                                        "manifest_path": str(noise)}}, RATE)
        assert aug.problems() == []
        x = torch.from_numpy(_tone(1000.0, 1.0, 0.3))
        added = aug(x) - x
        assert math.isclose(_rms(added), _rms(x) / 10, rel_tol=1e-3)
        assert abs(_dominant_hz(added) - 440.0) <= 1.0

    def test_noise_from_a_folder_and_mix_at_snr(self, tmp_path: Path) -> None:
        """A folder of audio files is a noise source too; a file shorter than the clip is
        repeated; mix_at_snr scales the noise to the ratio asked."""
        _write(tmp_path / "a.wav", _tone(300.0, 0.25))
        files = NoiseFiles(tmp_path, RATE)
        segment = files.segment(RATE)
        assert segment.shape == (RATE,) and abs(_dominant_hz(segment) - 300.0) <= 1.0
        x = torch.from_numpy(_tone(1000.0, 1.0, 0.3))
        mixed = mix_at_snr(x, segment, 6.0)
        assert math.isclose(_rms(x) / _rms(mixed - x), 10 ** (6 / 20), rel_tol=1e-4)

    def test_problems_before_training(self, tmp_path: Path) -> None:
        """A missing manifest, an empty folder and an unreadable file are named."""
        assert AudioAugmentor({"noise": {"manifest_path": str(tmp_path / "none.json")}},
                              RATE).problems() == [
            f"augmentor.noise.manifest_path: noise manifest or folder not found: "
            f"{tmp_path / 'none.json'}"]
        (tmp_path / "empty").mkdir()
        assert "holds no audio files" in NoiseFiles(tmp_path / "empty", RATE).problems()[0]
        (tmp_path / "bad.wav").write_text("not audio")
        m = _manifest(tmp_path / "m.json", [{"audio_filepath": "bad.wav", "duration": 1.0}])
        (problem,) = NoiseFiles(m, RATE).problems()
        assert f"noise file {tmp_path / 'bad.wav'} is unreadable" in problem

    def test_coloured_noise(self) -> None:
        """Unit RMS; brown noise (exponent 2) puts far more power below 500 Hz than white."""
        white, brown = coloured_noise(RATE, 0.0), coloured_noise(RATE, 2.0)
        assert math.isclose(_rms(white), 1.0, rel_tol=1e-4)

        def low_share(x: torch.Tensor) -> float:
            power = torch.fft.rfft(x).abs() ** 2
            return float(power[:500].sum() / power.sum())

        assert low_share(white) < 0.1 and low_share(brown) > 0.9

    def test_noise_clips_levels_and_seeds(self) -> None:
        """Clips are `length` long at a level in the range; a seed makes them repeatable."""
        clips = NoiseClips(4, 8000, min_level_db=-40.0, max_level_db=-30.0)
        for i in range(4):
            level = 20 * math.log10(_rms(clips.clip(i)))
            assert -40.01 <= level <= -29.99
        assert torch.equal(clips.clip(2, seed=1), clips.clip(2, seed=1))
        assert not torch.equal(clips.clip(2, seed=1), clips.clip(3, seed=1))


# --- the data source --------------------------------------------------------------------------


@pytest.fixture
def words(tmp_path: Path) -> Path:
    """A manifest of six tone 'words' of 0.5 s to 1.5 s labelled a or b."""
    rows = []
    for i, seconds in enumerate((0.5, 0.75, 1.0, 1.25, 1.5, 0.6)):
        path = _write(tmp_path / f"w{i}.flac", _tone(200.0 + 100 * i, seconds))
        rows.append({"audio_filepath": path.name, "duration": seconds, "label": "ab"[i % 2]})
    return _manifest(tmp_path / "words.json", rows)


class TestClassificationSource:
    def test_fixed_length(self, words: Path) -> None:
        """fixed_length 1.0: every clip of every split is 16000 samples; evaluation crops
        centrally and pads evenly, exactly as inference_clip does."""
        source = AudioToClassificationLabelDataset(["a", "b"], fixed_length=1.0)
        for split in ("train", "test"):
            batch = next(iter(source.dataloader(split, str(words), batch_size=6)))
            assert batch["audio_signal"].shape == (6, RATE)
            assert batch["audio_length"].tolist() == [RATE] * 6
        batch = next(iter(source.dataloader("test", str(words), batch_size=6)))
        for i, seconds in ((0, 0.5), (4, 1.5)):
            raw = torch.from_numpy(sf.read(words.parent / f"w{i}.flac", dtype="float32")[0])
            assert raw.numel() == round(seconds * RATE)
            assert torch.equal(batch["audio_signal"][i], source.inference_clip(raw))
            assert torch.equal(batch["audio_signal"][i], crop_or_pad(raw, RATE))

    def test_without_fixed_length_clips_keep_their_length(self, words: Path) -> None:
        source = AudioToClassificationLabelDataset(["a", "b"])
        batch = next(iter(source.dataloader("test", str(words), batch_size=6)))
        assert batch["audio_length"].tolist() == [8000, 12000, 16000, 20000, 24000, 9600]

    def test_silence_clips_of_coloured_noise(self, words: Path) -> None:
        """silence_fraction 0.5 adds 3 clips after the 6 of the manifest, labelled silence,
        fixed_length long; validation clips are the same on every pass, training ones new."""
        source = AudioToClassificationLabelDataset(["a", "b", "silence"], fixed_length=0.5)
        loader = source.dataloader("validation", str(words), batch_size=16,
                                   silence_fraction=0.5)
        first, again = next(iter(loader)), next(iter(loader))
        assert first["label"].tolist() == [0, 1, 0, 1, 0, 1, 2, 2, 2]
        assert first["audio_signal"].shape == (9, 8000)
        assert torch.equal(first["audio_signal"], again["audio_signal"])
        for clip in first["audio_signal"][6:]:
            assert -70.01 <= 20 * math.log10(_rms(clip)) <= -24.99
        train = source.dataloader("train", str(words), batch_size=16, silence_fraction=0.5)
        one, two = (next(iter(train)) for _ in range(2))
        silent = [torch.sort(b["audio_signal"][b["label"] == 2].abs().sum(-1)).values
                  for b in (one, two)]
        assert len(silent[0]) == 3 and not torch.equal(silent[0], silent[1])

    def test_silence_clips_from_noise_files(self, words: Path, tmp_path: Path) -> None:
        """With silence_noise, silence clips are segments of those files."""
        (tmp_path / "noise").mkdir()
        _write(tmp_path / "noise" / "hum.wav", _tone(50.0, 2.0))
        source = AudioToClassificationLabelDataset(["a", "b", "silence"], fixed_length=1.0)
        batch = next(iter(source.dataloader("test", str(words), batch_size=16,
                                            silence_fraction=1 / 3,
                                            silence_noise=str(tmp_path / "noise"))))
        clips = batch["audio_signal"][batch["label"] == 2]
        assert len(clips) == 2
        assert all(abs(_dominant_hz(c) - 50.0) <= 1.0 for c in clips)

    def test_silence_problems(self, words: Path, tmp_path: Path) -> None:
        """validate names a silence_fraction without a silence label, a bad fraction and
        missing noise; dataloader refuses them too."""
        plain = AudioToClassificationLabelDataset(["a", "b"])
        problems = plain.validate("train", manifest_filepath=str(words), silence_fraction=0.1)
        assert problems == ["data.train: silence_fraction 0.1 generates 'silence' clips, but "
                            "'silence' is not one of the labels ['a', 'b']"]
        with pytest.raises(UserError, match="not one of the labels"):
            plain.dataloader("train", str(words), silence_fraction=0.1)
        source = AudioToClassificationLabelDataset(["a", "b", "silence"])
        assert "silence_fraction must be a number in [0, 10]" in source.validate(
            "train", manifest_filepath=str(words), silence_fraction=-1)[0]
        missing = str(tmp_path / "nowhere")
        assert source.validate("test", manifest_filepath=str(words), silence_fraction=0.1,
                               silence_noise=missing) == [
            f"data.test: silence_noise: noise manifest or folder not found: {missing}"]

    def test_augmentor_noise_is_checked_before_training(self, words: Path,
                                                        tmp_path: Path) -> None:
        """A missing noise manifest of the augmentor is a problem of the train split."""
        missing = str(tmp_path / "noise.json")
        source = AudioToClassificationLabelDataset(
            ["a", "b"], augmentor={"noise": {"manifest_path": missing}})
        assert source.validate("train", manifest_filepath=str(words)) == [
            f"data.params.augmentor.noise.manifest_path: noise manifest or folder not found: "
            f"{missing}"]
        assert source.validate("validation", manifest_filepath=str(words)) == []

    def test_boolean_labels_are_refused(self) -> None:
        """YAML's bare yes/no/on/off are booleans: the label's key says to quote them."""
        with pytest.raises(ParameterError) as caught:
            AudioToClassificationLabelDataset(["up", True])
        assert caught.value.parameter == "labels.1" and "quote them" in str(caught.value)

    def test_fixed_length_must_be_positive(self) -> None:
        with pytest.raises(ParameterError, match="fixed_length"):
            AudioToClassificationLabelDataset(["a"], fixed_length=0)
