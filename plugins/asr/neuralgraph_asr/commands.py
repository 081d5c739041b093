"""The ASR plugin's commands: ``neuralgraph transcribe`` and ``neuralgraph asr ...``.

This module imports nothing heavy at the top (no torch): ``neuralgraph --help`` imports it to
list the commands; each ``configure_*`` and ``run_*`` imports what it needs.
"""

from __future__ import annotations

import argparse
import json


def _positive_int(text: str) -> int:
    """An argparse type: an int >= 1 (argparse exits 2 naming the option otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive int (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int (got {value})")
    return value


def configure_transcribe(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``neuralgraph transcribe``."""
    from neuralgraph_asr.vtln import DEFAULT_WARPS, VTLN_MODES  # imports torch

    parser.add_argument("--model", required=True,
                        help="a .ngm archive of an ASR graph, or a pretrained model's name "
                             "('neuralgraph pretrained list')")
    parser.add_argument("audio", nargs="*", help="audio files (any rate; read with soundfile)")
    parser.add_argument("--manifest", help="a NeMo manifest naming the audio files instead "
                                           "(its `speaker` keys give --vtln speaker its speakers)")
    parser.add_argument("--wer", action="store_true",
                        help="print the WER against the manifest's texts instead of the "
                             "transcripts (with --json: one object whose `wer` is a fraction)")
    parser.add_argument("--batch-size", type=_positive_int, default=4)
    parser.add_argument("--decoder", choices=("greedy", "beam"), default="greedy")
    parser.add_argument("--beam-size", type=_positive_int, default=16)
    parser.add_argument("--lexicon", help="flashlight lexicon file (beam search)")
    parser.add_argument("--lm", help="KenLM language model file (beam search)")
    parser.add_argument("--lm-weight", type=float, default=2.0)
    parser.add_argument("--vtln", choices=VTLN_MODES,
                        help="vocal tract length normalization: one frequency warp per speaker "
                             "('speaker': the manifest's speakers, or all the audio files are "
                             "one) or per file ('utterance'), the one the model is most "
                             "confident about")
    parser.add_argument("--vtln-warps", type=float, nargs="+", default=list(DEFAULT_WARPS),
                        metavar="W", help="warp factors VTLN tries (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON line per file")


def run_transcribe(args: argparse.Namespace) -> int:
    """Print the transcript of each file, ``PATH<TAB>TEXT`` (or JSON lines), or with ``--wer``
    the word error rate against a manifest's texts."""
    import neuralgraph as ng
    from neuralgraph.pretrained import resolve_model
    from neuralgraph_asr.metrics import word_errors
    from neuralgraph_asr.model import ASRModel
    from neuralgraph_audio import read_manifest

    if bool(args.audio) == bool(args.manifest):
        raise ng.UserError("transcribe needs audio files or --manifest (one of the two); got "
                           + ("both" if args.audio else "neither"))
    if args.wer and not args.manifest:
        raise ng.UserError("--wer needs --manifest: its texts are the references")
    paths: list[str] = list(args.audio)
    speakers = references = None
    if args.manifest:
        entries, _ = read_manifest(args.manifest)
        if not entries:
            raise ng.UserError(f"manifest {args.manifest} has no entries")
        segments = [e.line for e in entries if e.offset]
        if segments:
            raise ng.UserError(f"transcribe reads whole files, but lines {segments[:10]} of "
                               f"{args.manifest} have an `offset` (a segment of a file)")
        paths = [e.audio_filepath for e in entries]
        references = [e.text for e in entries]
        if args.vtln == "speaker":
            unnamed = [e.line for e in entries if e.speaker is None]
            if unnamed:
                raise ng.UserError(f"--vtln speaker needs a `speaker` on every line of "
                                   f"{args.manifest}; lines without one: {unnamed[:10]}")
            speakers = [e.speaker for e in entries]
    model = ASRModel.restore_from(resolve_model(args.model))
    options = {}
    if args.decoder == "beam":
        options = {"beam_size": args.beam_size, "lexicon": args.lexicon, "lm": args.lm,
                   "lm_weight": args.lm_weight}
    texts = model.transcribe(paths, batch_size=args.batch_size, decoder=args.decoder,
                             vtln=args.vtln, speakers=speakers, vtln_warps=args.vtln_warps,
                             progress=True, **options)
    if args.wer:
        assert references is not None
        # The reference as `evaluate` scores it: through the model's tokenizer and back.
        source = model.data_source
        references = [source.ids_to_text(source.text_to_ids(ref)) for ref in references]
        counts = [word_errors(text, ref) for text, ref in zip(texts, references, strict=True)]
        errors, words = sum(e for e, _ in counts), sum(w for _, w in counts)
        wer = errors / max(words, 1)
        if args.json:
            print(json.dumps({"wer": wer, "errors": errors, "words": words,
                              "utterances": len(texts)}))
        else:
            print(f"WER {100 * wer:.2f}% ({errors} errors in {words} words, "
                  f"{len(texts)} utterances)")
        return 0
    for path, text in zip(paths, texts):
        if args.json:
            print(json.dumps({"audio_filepath": path, "text": text}))
        else:
            print(f"{path}\t{text}")
    return 0


def configure_asr(parser: argparse.ArgumentParser) -> None:
    """``neuralgraph asr tokenizer|synth|lm``."""
    from neuralgraph_asr.lm import configure_lm_parser, run_lm
    from neuralgraph_asr.synth import configure_synth_parser, run_synth
    from neuralgraph_asr.tokenizer import configure_tokenizer_parser, run_tokenizer

    sub = parser.add_subparsers(dest="asr_command", metavar="ASR_COMMAND", required=True)
    tok = sub.add_parser("tokenizer", help="train a SentencePiece tokenizer on manifests")
    configure_tokenizer_parser(tok)
    tok.set_defaults(asr_run=run_tokenizer)
    synth = sub.add_parser("synth", help="synthesize a multi-speaker English corpus")
    configure_synth_parser(synth)
    synth.set_defaults(asr_run=run_synth)
    lm = sub.add_parser("lm", help="word lexicon and n-gram LM files for beam search")
    configure_lm_parser(lm)
    lm.set_defaults(asr_run=run_lm)


def run_asr(args: argparse.Namespace) -> int:
    """Dispatch to the chosen ``asr`` subcommand."""
    return int(args.asr_run(args) or 0)
