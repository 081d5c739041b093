"""The ``neuralgraph classify`` command: a label and its confidence for each audio file, from a
``.ngm`` archive of an utterance classifier (:class:`~neuralgraph_asr.classify.
ClassificationModel`).

This module imports nothing heavy at the top (no torch): ``neuralgraph --help`` imports it to
list the command.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["configure_classify", "run_classify"]


def _positive_int(text: str) -> int:
    """An argparse type: an int >= 1 (argparse exits 2 naming the option otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive int (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int (got {value})")
    return value


def configure_classify(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``neuralgraph classify``."""
    parser.add_argument("--model", required=True,
                        help="a .ngm archive of a classification graph (speech commands), or "
                             "a pretrained model's name ('neuralgraph pretrained list')")
    parser.add_argument("audio", nargs="*", help="audio files (any rate; read with soundfile)")
    parser.add_argument("--manifest", help="a NeMo manifest naming the audio files instead; "
                                           "its `label` keys, where present, must be among "
                                           "the model's labels")
    parser.add_argument("--batch-size", type=_positive_int, default=16)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object a line: audio_filepath, label, confidence (and "
                             "the manifest's label as `reference`)")


def run_classify(args: argparse.Namespace) -> int:
    """Print ``PATH<TAB>LABEL<TAB>CONFIDENCE`` for each file (or JSON lines)."""
    import neuralgraph as ng
    from neuralgraph.pretrained import resolve_model
    from neuralgraph_asr.classify import ClassificationModel
    from neuralgraph_audio import read_manifest

    if bool(args.audio) == bool(args.manifest):
        raise ng.UserError("classify needs audio files or --manifest (one of the two); got "
                           + ("both" if args.audio else "neither"))
    paths: list[str] = list(args.audio)
    where: list[str] | None = None
    references: list[str | None] = [None] * len(paths)
    model = ClassificationModel.restore_from(resolve_model(args.model))
    if args.manifest:
        entries, _ = read_manifest(args.manifest)
        if not entries:
            raise ng.UserError(f"manifest {args.manifest} has no entries")
        segments = [e.line for e in entries if e.offset]
        if segments:
            raise ng.UserError(f"classify reads whole files, but lines {segments[:10]} of "
                               f"{args.manifest} have an `offset` (a segment of a file)")
        labels = model.labels
        for entry in entries:
            if entry.label is not None and entry.label not in labels:
                raise ng.UserError(f"{args.manifest}:{entry.line}: label {entry.label!r} is not "
                                   f"one of the model's {len(labels)} labels ({', '.join(labels)})"
                                   f" ({entry.audio_filepath})")
        paths = [e.audio_filepath for e in entries]
        where = [f"{args.manifest}:{e.line}" for e in entries]
        references = [e.label for e in entries]
    results = model.classify(paths, batch_size=args.batch_size, progress=True, where=where)
    for path, (label, confidence), reference in zip(paths, results, references, strict=True):
        if args.json:
            line = {"audio_filepath": path, "label": label, "confidence": round(confidence, 4)}
            if reference is not None:
                line["reference"] = reference
            print(json.dumps(line))
        else:
            print(f"{path}\t{label}\t{confidence:.2f}")
    return 0
