"""WER of a trained model per voice of a manifest, with greedy and beam-search decoding.

    python benchmarks/asr_quality/per_voice.py --model M.ngm \
        --manifest data/digits8k/heldout_manifest.json [--lm-dir lm/] [--json out.json]

Voices are the manifest's ``speaker`` without the espeak-ng variant (``espeak:en-us+f3`` counts
as ``espeak:en-us``). With ``--lm-dir`` (``neuralgraph asr lm`` output: lexicon.txt, lm.arpa)
beam search with that lexicon and LM is scored as well; ``--beam`` adds lexicon-free beam search.
``--vtln speaker`` (or ``utterance``) decodes with test-time VTLN, one warp per manifest
``speaker`` (or per file).
Each set's line counts the substituted, deleted and inserted words.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import jiwer

from neuralgraph_asr.metrics import word_errors
from neuralgraph_asr.model import ASRModel
from neuralgraph_audio import ManifestEntry, read_manifest


def _voice(entry: ManifestEntry) -> str:
    """The speaker without its espeak-ng variant (``espeak:en-us+f3`` -> ``espeak:en-us``)."""
    return str(entry.speaker if entry.speaker is not None else "?").split("+")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True, nargs="+", type=Path)
    parser.add_argument("--lm-dir", type=Path, help="folder with lexicon.txt and lm.arpa")
    parser.add_argument("--beam", action="store_true", help="also lexicon-free beam search")
    parser.add_argument("--word-score", type=float, default=0.0,
                        help="flashlight's word score for the lexicon + LM decoder")
    parser.add_argument("--vtln", choices=("utterance", "speaker"),
                        help="test-time VTLN: a warp per file, or per the manifest's speaker")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()

    model = ASRModel.restore_from(args.model)
    decoders: dict[str, dict] = {"greedy": {"decoder": "greedy"}}
    if args.beam:
        decoders["beam"] = {"decoder": "beam", "beam_size": 16}
    if args.lm_dir:
        decoders["beam+lexicon+lm"] = {
            "decoder": "beam", "beam_size": 16, "lexicon": str(args.lm_dir / "lexicon.txt"),
            "lm": str(args.lm_dir / "lm.arpa"), "lm_weight": 1.0,
            "word_score": args.word_score}
    report: dict[str, dict] = {}
    for manifest in args.manifest:
        rows, _ = read_manifest(manifest)
        paths = [r.audio_filepath for r in rows]
        for name, options in decoders.items():
            start = time.perf_counter()
            texts = model.transcribe(paths, batch_size=args.batch_size, vtln=args.vtln,
                                     speakers=[r.speaker for r in rows], **options)
            elapsed = time.perf_counter() - start
            per_voice: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for row, text in zip(rows, texts):
                errors, words = word_errors(text, row.text)
                for key in ("all", _voice(row)):
                    per_voice[key][0] += errors
                    per_voice[key][1] += words
            table = {k: {"wer": e / max(w, 1), "words": w, "utterances": 0}
                     for k, (e, w) in per_voice.items()}
            for row in rows:
                table[_voice(row)]["utterances"] += 1
            table["all"]["utterances"] = len(rows)
            kinds = jiwer.process_words([r.text for r in rows], texts)
            table["all"].update(substitutions=kinds.substitutions, deletions=kinds.deletions,
                                insertions=kinds.insertions)
            report[f"{manifest.name}/{name}"] = {"seconds": elapsed, "voices": table}
            print(f"\n{manifest} — {name} ({elapsed:.1f} s): {kinds.substitutions} substituted, "
                  f"{kinds.deletions} deleted, {kinds.insertions} inserted words")
            for key in ["all", *sorted(k for k in table if k != "all")]:
                entry = table[key]
                print(f"  {key:34s} {100 * entry['wer']:6.2f}%  "
                      f"({entry['utterances']} utterances, {entry['words']} words)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
