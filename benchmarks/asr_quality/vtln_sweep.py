"""Held-out WER of trained models without and with test-time VTLN, per voice.

    python benchmarks/asr_quality/vtln_sweep.py --lm-dir data/digits8k/lm \
        --manifest data/digits8k/heldout_manifest.json --json out.json M1.ngm M2.ngm ...

Each model's log-probs are computed once per warp of the grid (``--warps``, default
``neuralgraph_asr.vtln.DEFAULT_WARPS``); the warps are then chosen per utterance
(``utterance``), per manifest ``speaker`` (``speaker``) or per ``--group`` utterances of a
speaker (``speaker/8``: what a few utterances of a new speaker give) with ``choose_warps``, as
``ASRModel.transcribe(vtln=...)`` does, and decoded greedily and, with ``--lm-dir``, by beam
search with that lexicon and LM (lm_weight 1, as ``per_voice.py``). ``none`` is the plain model.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from neuralgraph_asr.metrics import word_errors
from neuralgraph_asr.model import ASRModel
from neuralgraph_asr.vtln import DEFAULT_WARPS, best_path_scores, choose_warps
from neuralgraph_audio import read_audio, read_manifest


def _voice(speaker: object) -> str:
    return str(speaker).split("+")[0]


def sweep(model_path: Path, manifest: Path, warps: list[float], lm_dir: Path | None,
          batch_size: int, group: int) -> dict[str, dict]:
    """{mode: {decoder: {"all" or voice: WER}, "warps": {speaker: warp}}} for one model."""
    model = ASRModel.restore_from(model_path)
    rows, _ = read_manifest(manifest)
    source = model.data_source
    decoders = {"greedy": model.decoder("greedy")}
    if lm_dir is not None:
        decoders["lexicon+lm"] = model.decoder(
            "beam", beam_size=16, lexicon=lm_dir / "lexicon.txt", lm=lm_dir / "lm.arpa",
            lm_weight=1.0)
    # log-probs (T_i, D) of every utterance under every warp, and their best-path scores
    rate = int(getattr(source, "sample_rate", 16000))
    outputs: dict[float, list[torch.Tensor]] = {w: [] for w in warps}
    scores = torch.zeros(len(rows), len(warps))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start: start + batch_size]
        audio = [read_audio(str(r.audio_filepath), sample_rate=rate) for r in chunk]
        for k, warp in enumerate(warps):
            log_probs, lengths = model.log_probs(audio, warps=[warp] * len(audio))
            log_probs, lengths = log_probs.float().cpu(), lengths.cpu()
            scores[start: start + len(chunk), k] = best_path_scores(log_probs, lengths)
            outputs[warp].extend(lp[: int(n)] for lp, n in zip(log_probs, lengths))
    speakers = [r.speaker for r in rows]
    seen: dict[object, int] = defaultdict(int)
    groups = []  # each speaker's utterances in groups of `group` (manifest order)
    for speaker in speakers:
        groups.append((speaker, seen[speaker] // group))
        seen[speaker] += 1
    choices = {"none": [1.0] * len(rows) if 1.0 in warps else None,
               "utterance": choose_warps(scores, warps),
               "speaker": choose_warps(scores, warps, speakers),
               f"speaker/{group}": choose_warps(scores, warps, groups)}
    report: dict[str, dict] = {}
    for mode, chosen in choices.items():
        if chosen is None:
            continue
        report[mode] = {}
        per_utt = [outputs[w][i] for i, w in enumerate(chosen)]
        for name, decode in decoders.items():
            errors: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for start in range(0, len(rows), batch_size):
                batch = per_utt[start: start + batch_size]
                lengths = torch.tensor([len(x) for x in batch])
                padded = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True)
                for row, ids in zip(rows[start: start + batch_size], decode(padded, lengths)):
                    e, n = word_errors(source.ids_to_text(ids), row.text)
                    for key in ("all", _voice(row.speaker)):
                        errors[key][0] += e
                        errors[key][1] += n
            report[mode][name] = {k: e / max(n, 1) for k, (e, n) in errors.items()}
        if mode == "speaker":
            report[mode]["warps"] = {str(s): w for s, w in zip(speakers, chosen)
                                     if not str(s).startswith("espeak")}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--lm-dir", type=Path, help="folder with lexicon.txt and lm.arpa")
    parser.add_argument("--warps", type=float, nargs="+", default=list(DEFAULT_WARPS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--group", type=int, default=8,
                        help="mode speaker/N: a warp per N utterances of a speaker (8)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    results = {}
    for path in args.models:
        results[str(path)] = report = sweep(path, args.manifest, args.warps, args.lm_dir,
                                            args.batch_size, args.group)
        print(path)
        for mode, figures in report.items():
            line = "  ".join(f"{name} {100 * figures[name]['all']:6.2f}%"
                             for name in figures if name != "warps")
            print(f"  {mode:10s} {line}  {figures.get('warps', '')}")
        if args.json:  # after every model, so that a long sweep leaves what it has
            args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
