"""`neuralgraph classify`, `ClassificationModel` and `neuralgraph evaluate` on a speech-commands
archive: examples/asr/matchboxnet_3x1x64.yaml trained for one epoch on tone 'words' (a real
training run, a few seconds), then used as a user would; every bad input exits 2 naming the
file (and the manifest line)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neuralgraph.cli import main
from tests.conftest import ROOT, run_cli

RATE = 16000
GRAPH = ROOT / "examples" / "asr" / "matchboxnet_3x1x64.yaml"
LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown",
          "silence"]


def _clip(path: Path, freq: float, seconds: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, audio.astype(np.float32), RATE, format="FLAC")
    return {"audio_filepath": path.name, "duration": seconds}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tone 'word' per label and split (two in train), and two noise files."""
    root = tmp_path_factory.mktemp("commands")
    for split, copies in (("train", 2), ("dev", 1), ("heldout", 1)):
        rows = []
        for i, label in enumerate(LABELS):
            for k in range(copies):
                name = root / f"{split}_{i}_{k}.flac"
                rows.append({**_clip(name, 300 + 60 * i, 0.6, 100 * len(split) + 10 * i + k),
                             "label": label})
        (root / f"{split}_manifest.json").write_text(
            "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    noise = [_clip(root / f"noise{i}.flac", 50.0, 2.0, i) for i in range(2)]
    (root / "noise_manifest.json").write_text("".join(json.dumps(r) + "\n" for r in noise))
    return root


@pytest.fixture(scope="module")
def archive(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example graph trained for one epoch with `neuralgraph train`."""
    runs = tmp_path_factory.mktemp("runs")
    result = run_cli("train", str(GRAPH), f"data_dir={data}", "trainer.max_epochs=1",
                     "--exp-dir", str(runs), "--version", "t")
    assert result.returncode == 0, result.stderr[-3000:]
    return runs / "matchboxnet_3x1x64" / "t" / "matchboxnet_3x1x64.ngm"


def _call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


class TestClassifyCommand:
    def test_prints_path_label_confidence(self, archive: Path, data: Path) -> None:
        """One line per file, as a user runs it: PATH<TAB>LABEL<TAB>0.97."""
        files = [str(data / "heldout_0_0.flac"), str(data / "heldout_11_0.flac")]
        result = run_cli("classify", "--model", str(archive), *files)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 2
        for path, line in zip(files, lines, strict=True):
            found, label, confidence = line.split("\t")
            assert found == path and label in LABELS
            assert re.fullmatch(r"[01]\.\d\d", confidence) and 0 < float(confidence) <= 1

    def test_json_and_manifest(self, archive: Path, data: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
        """--json: one object a line; --manifest classifies its files and adds their labels
        as `reference`."""
        code, out, err = _call(capsys, "classify", "--model", str(archive), "--json",
                               "--manifest", str(data / "dev_manifest.json"))
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert [line["reference"] for line in lines] == LABELS
        assert all(line["label"] in LABELS and 0 < line["confidence"] <= 1 for line in lines)
        assert lines[0]["audio_filepath"] == str(data / "dev_0_0.flac")

    def test_python_api(self, archive: Path, data: Path) -> None:
        """ClassificationModel.restore_from(p).classify(paths): (label, confidence) each, the
        confidence the label's softmax probability, the same whatever the batch size."""
        from neuralgraph_asr.classify import ClassificationModel

        model = ClassificationModel.restore_from(archive)
        assert model.labels == LABELS and model.logits_key() == "decoder.logits"
        paths = sorted(data.glob("heldout_*.flac"))
        one = model.classify(paths, batch_size=1)
        assert [label for label, _ in one] == [label for label, _ in model.classify(paths)]
        assert all(isinstance(c, float) and 1 / 12 <= c <= 1 for _, c in one)

    def test_label_not_among_the_models(self, archive: Path, data: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
        """A manifest label the model does not have: exit 2 with the manifest's line."""
        bad = tmp_path / "m.json"
        bad.write_text(json.dumps({"audio_filepath": str(data / "dev_0_0.flac"),
                                   "duration": 0.6, "label": "yes"}) + "\n"
                       + json.dumps({"audio_filepath": str(data / "dev_1_0.flac"),
                                     "duration": 0.6, "label": "maybe"}) + "\n")
        code, out, err = _call(capsys, "classify", "--model", str(archive), "--manifest",
                               str(bad))
        assert code == 2 and out == ""
        assert f"error: {bad}:2: label 'maybe' is not one of the model's 12 labels" in err
        assert str(data / "dev_1_0.flac") in err

    def test_audio_shorter_than_one_window(self, archive: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """100 samples (6 ms) cannot fill one 25 ms MFCC window: exit 2 naming the file, and
        the manifest line when it came from one."""
        short = tmp_path / "short.wav"
        sf.write(short, np.zeros(100, dtype=np.float32), RATE)
        code, _, err = _call(capsys, "classify", "--model", str(archive), str(short))
        assert code == 2
        assert (f"error: {short}: the audio is 100 samples (6.2 ms), shorter than one analysis "
                "window of the model (400 samples, 25 ms)") in err
        manifest = tmp_path / "m.json"
        manifest.write_text(json.dumps({"audio_filepath": "short.wav", "duration": 0.00625})
                            + "\n")
        code, _, err = _call(capsys, "classify", "--model", str(archive), "--manifest",
                             str(manifest))
        assert code == 2 and f"error: {manifest}:1: the audio is 100 samples" in err
        assert f"({short})" in err

    def test_unreadable_and_missing_files(self, archive: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
        """A file that is not audio and a missing one: exit 2 naming each, no traceback."""
        fake = tmp_path / "fake.wav"
        fake.write_text("this is not audio")
        code, _, err = _call(capsys, "classify", "--model", str(archive), str(fake))
        assert code == 2 and f"error: {fake}: cannot read audio" in err
        assert "Traceback" not in err
        code, _, err = _call(capsys, "classify", "--model", str(archive),
                             str(tmp_path / "none.wav"))
        assert code == 2 and f"audio file not found: {tmp_path / 'none.wav'}" in err
        code, _, err = _call(capsys, "classify", "--model", str(archive))
        assert code == 2 and "classify needs audio files or --manifest" in err


class TestEvaluate:
    def test_accuracy_and_per_class(self, archive: Path, data: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """evaluate --json of a classification archive: `accuracy` a fraction (the metric
        named accuracy in the graph), per-class precision, recall and count."""
        code, out, err = _call(capsys, "evaluate", "--model", str(archive), "--manifest",
                               str(data / "heldout_manifest.json"), "--json")
        assert code == 0, err
        results = json.loads(out)
        assert 0.0 <= results["accuracy"] <= 1.0 and results["utterances"] == 12
        assert list(results["per_class"]) == LABELS
        assert all(row["count"] == 1 and set(row) == {"precision", "recall", "count"}
                   for row in results["per_class"].values())
        right = sum(row["recall"] for row in results["per_class"].values())
        assert abs(results["accuracy"] - right / 12) < 1e-6

    def test_text_output(self, archive: Path, data: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
        """Without --json, one line per figure and per class."""
        code, out, _ = _call(capsys, "evaluate", "--model", str(archive), "--manifest",
                             str(data / "heldout_manifest.json"))
        assert code == 0
        assert re.search(r"^accuracy: [01]\.\d{4}$", out, re.MULTILINE)
        assert re.search(r"^per_class\.yes: precision [01]\.\d{4}  recall [01]\.\d{4}  count 1$",
                         out, re.MULTILINE)

    def test_unknown_label_exits_2_with_the_line(self, archive: Path, data: Path,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
        bad = tmp_path / "m.json"
        bad.write_text(json.dumps({"audio_filepath": str(data / "dev_0_0.flac"),
                                   "duration": 0.6, "label": "maybe"}) + "\n")
        code, _, err = _call(capsys, "evaluate", "--model", str(archive), "--manifest",
                             str(bad))
        assert code == 2
        assert f"{bad}:1: label 'maybe' is not one of the 12 labels" in err


def test_info_shows_the_new_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    """neuralgraph info describes the loss, the metrics and the decoder with their ports."""
    for name, port in (("CrossEntropyLoss", "logits: (B,D) LogitsType"),
                       ("ClassificationAccuracy labels=[a,b]", "logits: (B,D=2) LogitsType"),
                       ("TopKClassificationAccuracy num_classes=5", "labels: (B) LabelsType"),
                       ("ConvASRDecoderClassification feat_in=8 num_classes=3",
                        "logits: (B,D=3) LogitsType")):
        code, out, err = _call(capsys, "info", *name.split())
        assert code == 0, err
        assert port in out, out
