"""NeMo audio manifests: JSON lines read into :class:`ManifestEntry`, and checked before training.

A manifest line is ``{"audio_filepath": ..., "duration": ..., "text": ...}`` with optional
``offset`` (seconds into the file), ``speaker`` and ``label`` (classification). A relative
``audio_filepath`` is resolved against the manifest's folder. ``audio_filename`` and ``audio_file``
are accepted for ``audio_filepath``, as NeMo does.

:func:`validate_manifest` finds every problem a training run would meet later (malformed lines,
missing keys, missing or unreadable audio, a ``duration`` that the audio's header contradicts,
empty transcripts, characters outside the vocabulary) by reading audio headers only, and either
fails with all of them or skips the bad entries.

Only regular files are read, manifests and audio alike: a FIFO would block the reader and a
device such as ``/dev/zero`` never ends, so their ``stat`` refuses them before anything opens
them. A manifest is UTF-8 text of at most 1 GiB; a line that is not (binary data, another
encoding) stops the reading with that line's number.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import attrs

from neuralgraph import UserError

__all__ = [
    "ManifestEntry",
    "ManifestReport",
    "file_problem",
    "format_problems",
    "read_manifest",
    "resolve_audio_path",
    "validate_manifest",
]

# Reasons an entry is dropped: keys of ``skipped`` counts.
MALFORMED = "malformed json"
MISSING_KEY = "missing key"
BAD_VALUE = "bad value"
MISSING_FILE = "missing file"
UNREADABLE = "unreadable audio"
EMPTY_TEXT = "empty transcript"
OOV = "out-of-vocabulary characters"
UNKNOWN_LABEL = "unknown label"
TOO_SHORT = "shorter than min_duration"
TOO_LONG = "longer than max_duration"
DURATION_MISMATCH = "duration mismatch"
NOT_REGULAR = "not a regular file"

# A declared duration may differ from the header's length by this much: max(seconds, fraction
# of the length). Rounded durations (3 or 4 decimals) and codec padding stay well inside.
DURATION_TOLERANCE_S = 0.1
DURATION_TOLERANCE_FRACTION = 0.05
MAX_MANIFEST_BYTES = 1 << 30

_PATH_KEYS = ("audio_filepath", "audio_filename", "audio_file")
MAX_LISTED = 20


@attrs.frozen
class ManifestEntry:
    """One utterance of a manifest.

    ``audio_filepath`` is resolved (absolute when the manifest's folder is); ``line`` is the
    1-based line in ``manifest``.
    """

    audio_filepath: str
    duration: float
    text: str = ""
    offset: float = 0.0
    speaker: str | int | None = None
    label: str | None = None
    line: int = 0
    manifest: str = ""


class TextVocabulary(Protocol):
    """What :func:`validate_manifest` needs of a tokenizer."""

    def normalize(self, text: str) -> str: ...

    def text_to_ids(self, text: str) -> list[int]: ...

    @property
    def unk_id(self) -> int: ...


@attrs.define
class ManifestReport:
    """What :func:`validate_manifest` found.

    Attributes:
        path: the manifest as given.
        entries: the usable entries (duration filters applied; bad ones dropped under "skip").
        problems: one ``"manifest.json:LINE: message (audio path)"`` line per problem.
        notes: things that work but are worth knowing (resampling, mixdown, ``<unk>`` pieces).
        skipped: entries dropped, by reason (duration filters included).
    """

    path: str
    entries: list[ManifestEntry] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    skipped: dict[str, int] = attrs.field(factory=dict)


def format_problems(header: str, problems: Sequence[str], limit: int = MAX_LISTED) -> str:
    """``header`` and the first ``limit`` problems, one a line, then "... and N more"."""
    lines = [header, *(f"  {p}" for p in problems[:limit])]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a regular file that can be read, or None when it is one.

    The answer completes "PATH is ...": ``"not found"``, ``"a directory"``, ``"a FIFO (named
    pipe)"``, ``"a character device (a symbolic link to /dev/zero)"``... One ``stat`` call
    (symbolic links followed); nothing is opened, so a FIFO cannot block the caller.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "not found"
    except (OSError, ValueError) as err:  # ValueError: a NUL character in the path
        return f"not readable ({getattr(err, 'strerror', None) or err})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    if os.path.islink(path):
        kind += f" (a symbolic link to {os.path.realpath(path)})"
    return kind


def resolve_audio_path(audio_filepath: str, manifest_dir: str | Path) -> str:
    """``audio_filepath`` with ``~`` expanded, relative paths taken from ``manifest_dir``."""
    path = os.path.expanduser(audio_filepath)
    if not os.path.isabs(path):
        path = os.path.join(manifest_dir, path)
    return os.path.normpath(path)


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class _Bad:
    line: int
    reason: str
    message: str
    audio: str | None = None


def _open_manifest(path: str | Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a manifest with their numbers; a manifest that is not a regular
    file, is over 1 GiB, or has a line that is not UTF-8 text raises a UserError saying so."""
    manifest = Path(path).expanduser()
    _check_manifest_file(manifest, path)
    with manifest.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            line = _decode_line(raw, number, path)
            if line.strip():
                yield number, line


def _check_manifest_file(manifest: Path, shown: str | Path) -> None:
    problem = file_problem(manifest)
    if problem == "not found":
        raise UserError(f"manifest file not found: {shown}")
    if problem == "a directory":
        raise UserError(f"manifest {shown} is a directory, not a manifest file (JSON lines)"
                        + _manifests_in(manifest))
    if problem is not None:
        raise UserError(f"manifest {shown} is {problem}, not a regular file: only regular "
                        "files are read as manifests")
    size = manifest.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise UserError(f"manifest {shown} is {size / 2**30:.1f} GiB; a manifest must be at "
                        "most 1 GiB (split a larger one into several)")


def _manifests_in(folder: Path, scan: int = 10000) -> str:
    """"; it holds a.json, b.json: name one of them" for the JSON files among the first
    ``scan`` entries of ``folder`` (empty when there are none)."""
    names = []
    try:
        with os.scandir(folder) as found:
            for i, item in enumerate(found):
                if i >= scan:
                    break
                if item.name.endswith((".json", ".jsonl")) and item.is_file():
                    names.append(item.name)
    except OSError:
        return ""
    if not names:
        return ""
    names.sort()
    listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"; it holds {listed}: name one of them, e.g. {folder / names[0]}"


def _decode_line(raw: bytes, number: int, path: str | Path) -> str:
    """A manifest line as text; binary data or another encoding stops with the line."""
    if number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{path}:1: UTF-16 text (it starts with a UTF-16 byte-order mark); a "
                        "manifest is JSON lines in UTF-8: re-encode it, e.g. iconv -f utf-16 "
                        "-t utf-8")
    nul = raw.find(b"\0")
    if nul >= 0:
        raise UserError(f"{path}:{number}: binary data (a NUL byte at byte {nul + 1} of the "
                        "line), not a manifest: a manifest is JSON lines in UTF-8 (is this an "
                        "audio or archive file?)")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at byte "
                        f"{err.start + 1} of the line); a manifest is JSON lines in UTF-8: "
                        "re-encode it, e.g. iconv -f latin1 -t utf-8") from None
    return line[1:] if number == 1 and line.startswith("\ufeff") else line  # a UTF-8 BOM


def _number(item: dict[str, Any], key: str, default: float | None) -> float | None:
    value = item.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"'{key}' must be a number of seconds (got {value!r})")
    if value < 0:
        raise ValueError(f"'{key}' must be >= 0 (got {value!r})")
    return float(value)


def _parse_line(
    number: int, line: str, manifest: str, folder: str, target: str | None
) -> tuple[ManifestEntry, bool] | _Bad:
    """One manifest line as an entry and whether it has an ``offset`` (a segment of its file),
    or why it cannot be one."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        return _Bad(number, MALFORMED, f"malformed JSON ({err.msg} at column {err.colno})")
    if not isinstance(item, dict):
        message = f"malformed JSON (a line must be an object, got {line.strip()[:40]!r})"
        return _Bad(number, MALFORMED, message)
    key = next((k for k in _PATH_KEYS if k in item), None)
    required = [k for k in ("duration", target) if k is not None and k not in item]
    if key is None or required:
        missing = (["audio_filepath"] if key is None else []) + required
        return _Bad(number, MISSING_KEY, f"missing key {', '.join(repr(k) for k in missing)}")
    audio = item[key]
    if not isinstance(audio, str) or not audio:
        return _Bad(number, BAD_VALUE, f"'{key}' must be a non-empty string (got {audio!r})")
    audio = resolve_audio_path(audio, folder)
    try:
        duration = _number(item, "duration", None)
        offset = _number(item, "offset", 0.0)
    except ValueError as err:
        return _Bad(number, BAD_VALUE, str(err), audio)
    text, label = item.get("text", ""), item.get("label")
    if not isinstance(text, str):
        return _Bad(number, BAD_VALUE, f"'text' must be a string (got {text!r})", audio)
    if label is not None and not isinstance(label, (str, int)):
        return _Bad(number, BAD_VALUE, f"'label' must be a string (got {label!r})", audio)
    entry = ManifestEntry(
        audio_filepath=audio,
        duration=duration or 0.0,
        text=text,
        offset=offset or 0.0,
        speaker=item.get("speaker"),
        label=None if label is None else str(label),
        line=number,
        manifest=str(manifest),
    )
    return entry, item.get("offset") is not None


def _duration_reason(
    entry: ManifestEntry, min_duration: float | None, max_duration: float | None
) -> str | None:
    if min_duration is not None and entry.duration < min_duration:
        return TOO_SHORT
    if max_duration is not None and entry.duration > max_duration:
        return TOO_LONG
    return None


def _problem(manifest: str, bad: _Bad) -> str:
    where = f" ({bad.audio})" if bad.audio else ""
    return f"{manifest}:{bad.line}: {bad.message}{where}"


def _parse(
    path: str | Path,
    target: str | None,
    min_duration: float | None,
    max_duration: float | None,
) -> tuple[list[ManifestEntry], list[_Bad], Counter[str], set[int]]:
    """Entries, bad lines, duration-filter counts, and the lines that are segments."""
    entries, bad, skipped, segments = [], [], Counter[str](), set()
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    for number, line in _open_manifest(path):
        parsed = _parse_line(number, line, str(path), folder, target)
        if isinstance(parsed, _Bad):
            bad.append(parsed)
            continue
        entry, segment = parsed
        if reason := _duration_reason(entry, min_duration, max_duration):
            skipped[reason] += 1
            continue
        entries.append(entry)
        if segment:
            segments.add(number)
    return entries, bad, skipped, segments


def read_manifest(
    path: str | Path,
    *,
    min_duration: float | None = None,
    max_duration: float | None = None,
) -> tuple[list[ManifestEntry], dict[str, int]]:
    """Read a manifest's entries, keeping those with ``min_duration <= duration <= max_duration``.

    Only the manifest is read (no audio). ``text`` may be absent (it is then "").

    Returns:
        The entries, and how many were left out by each duration filter.

    Raises:
        UserError: the manifest is missing or not a regular file, is not UTF-8 text, or lines
            are malformed (all of them listed).
    """
    entries, bad, skipped, _ = _parse(path, None, min_duration, max_duration)
    if bad:
        problems = [_problem(str(path), b) for b in bad]
        raise UserError(format_problems(f"{len(problems)} bad lines in {path}:", problems))
    return entries, dict(skipped)


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def _text_problem(
    entry: ManifestEntry, labels: Sequence[str] | TextVocabulary | None
) -> _Bad | None:
    """An empty transcript, or characters that are not labels (tokenizers cover any text)."""
    normalize = getattr(labels, "normalize", None)
    text = normalize(entry.text) if normalize is not None else entry.text
    if not text.strip():
        detail = " after normalization" if entry.text.strip() else ""
        return _Bad(entry.line, EMPTY_TEXT, f"empty transcript{detail}", entry.audio_filepath)
    vocabulary = getattr(labels, "labels", labels)
    if isinstance(vocabulary, Sequence) and not isinstance(vocabulary, str):
        oov = sorted(set(text) - set(vocabulary))
        if oov:
            chars = ", ".join(repr(c) for c in oov)
            message = f"characters not in labels: {chars} in {text!r}"
            return _Bad(entry.line, OOV, message, entry.audio_filepath)
    return None


def _label_problem(entry: ManifestEntry, labels: Sequence[str] | None) -> _Bad | None:
    if entry.label is None:
        return _Bad(entry.line, MISSING_KEY, "missing key 'label'", entry.audio_filepath)
    if labels is not None and entry.label not in labels:
        message = f"label {entry.label!r} is not one of the {len(labels)} labels"
        return _Bad(entry.line, UNKNOWN_LABEL, message, entry.audio_filepath)
    return None


@attrs.frozen
class _AudioInfo:
    samplerate: int
    frames: int
    channels: int


class _NotRegular(Exception):
    """``path`` is not a regular file: ``str()`` says what it is (``file_problem``)."""


def _audio_info(path: str) -> _AudioInfo | Exception:
    """The header of ``path`` (not decoded), or the exception reading it raised.

    Opening a ``SoundFile`` reads the header only and is faster than ``soundfile.info``, which
    also collects format descriptions. A path that is not a regular file is not opened (a FIFO
    would block here forever).
    """
    import soundfile

    problem = file_problem(path)
    if problem is not None:
        return _NotRegular(problem)
    try:
        with soundfile.SoundFile(path) as f:
            return _AudioInfo(f.samplerate, f.frames, f.channels)
    except Exception as err:  # any failure to read a header is the file's problem
        return err


def _audio_infos(paths: Sequence[str]) -> list[Any]:
    return [_audio_info(p) for p in paths]


def _probe(paths: Sequence[str], chunk: int = 512) -> list[Any]:
    """Headers of many files; threads hide file-system latency (libsndfile releases the GIL)."""
    if len(paths) <= chunk:
        return _audio_infos(paths)
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [info for infos in pool.map(_audio_infos, chunks) for info in infos]


def _audio_problem(entry: ManifestEntry, info: Any, segment: bool = False) -> _Bad | None:
    """What is wrong with the entry's audio, from its header ``info``; ``segment``: the line
    has an ``offset``, so its duration is a part of the file, not all of it."""
    where = entry.audio_filepath
    if isinstance(info, _NotRegular):
        kind = str(info)
        if kind == "not found":
            return _Bad(entry.line, MISSING_FILE, "audio file not found", where)
        if kind == "a directory":
            return _Bad(entry.line, NOT_REGULAR, "audio path is a directory, not an audio file",
                        where)
        return _Bad(entry.line, NOT_REGULAR, f"audio path is {kind}, not a regular file: only "
                    "regular files are read as audio", where)
    if isinstance(info, Exception):
        if not os.path.exists(where):
            return _Bad(entry.line, MISSING_FILE, "audio file not found", where)
        reason = str(info).strip().splitlines()[-1] if str(info).strip() else type(info).__name__
        return _Bad(entry.line, UNREADABLE, f"unreadable audio ({reason})", where)
    if info.frames <= 0:
        return _Bad(entry.line, UNREADABLE, "audio file has no samples", where)
    length = info.frames / info.samplerate
    if entry.offset >= length:
        message = f"offset {entry.offset:g} s is past the end of the audio ({length:.2f} s)"
        return _Bad(entry.line, BAD_VALUE, message, where)
    return _duration_problem(entry, length, segment)


def _duration_problem(entry: ManifestEntry, length: float, segment: bool) -> _Bad | None:
    """A declared duration that the header's ``length`` (seconds) contradicts: a whole file's
    beyond the tolerance either way, a segment's end past the end of the file."""
    where = entry.audio_filepath
    if segment:
        end = entry.offset + entry.duration
        slack = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * entry.duration)
        if end <= length + slack:
            return None
        message = (f"offset {entry.offset:g} s + duration {entry.duration:g} s ends at "
                   f"{end:.2f} s, past the end of the audio ({length:.2f} s, from its header)")
        return _Bad(entry.line, DURATION_MISMATCH, message, where)
    slack = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * length)
    if abs(entry.duration - length) <= slack:
        return None
    message = (f"duration {entry.duration:g} s does not match the audio's {length:.2f} s (from "
               f"its header; tolerance {slack:.2g} s): correct 'duration', or give an 'offset' "
               "if the line is a segment of the file")
    return _Bad(entry.line, DURATION_MISMATCH, message, where)


def _audio_notes(infos: Sequence[Any], sample_rate: int) -> list[str]:
    rates = Counter(i.samplerate for i in infos if not isinstance(i, Exception))
    rates.pop(sample_rate, None)
    channels = sum(1 for i in infos if not isinstance(i, Exception) and i.channels > 1)
    notes = []
    if rates:
        found = ", ".join(f"{_count(n, 'file')} {'is' if n == 1 else 'are'} at {rate} Hz"
                          for rate, n in sorted(rates.items()))
        notes.append(f"{found}; resampled to {sample_rate} Hz")
    if channels:
        notes.append(f"{_count(channels, 'file')} {'has' if channels == 1 else 'have'} several "
                     "channels; mixed down to mono")
    return notes


def _count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _unk_note(entries: Sequence[ManifestEntry], tokenizer: TextVocabulary) -> list[str]:
    unk = tokenizer.unk_id
    count = sum(1 for e in entries if unk in tokenizer.text_to_ids(e.text))
    if not count:
        return []
    verb = "contains" if count == 1 else "contain"
    return [f"{_count(count, 'transcript')} {verb} text the tokenizer maps to <unk> (id {unk})"]


def validate_manifest(
    path: str | Path,
    *,
    labels: Sequence[str] | TextVocabulary | None = None,
    sample_rate: int = 16000,
    policy: str = "fail",
    check_audio: bool = True,
    min_duration: float | None = None,
    max_duration: float | None = None,
    target: str = "text",
) -> ManifestReport:
    """Check a manifest before training: every line, every audio header, every transcript.

    Args:
        path: the manifest.
        labels: the character labels (a list, or a ``CharTokenizer`` whose normalization is
            applied first) to find out-of-vocabulary characters; a
            SentencePiece tokenizer (any text is covered; ``<unk>`` pieces become a note); None to
            check only that transcripts are not empty. With ``target="label"``: the class labels.
        sample_rate: the rate the data source delivers; other rates are a note (resampled):
            "3 files are at 8000 Hz; resampled to 16000 Hz".
        policy: "fail" raises one ``UserError`` listing the problems; "skip" drops bad entries.
        check_audio: read each audio header (no decoding): the file must be a regular file
            that libsndfile reads, and a ``duration`` must match its length within
            max(0.1 s, 5%) (a line with an ``offset`` must end within the file).
        min_duration, max_duration: duration filters (not problems; counted in ``skipped``).
        target: "text" (ASR transcripts) or "label" (classification: the ``label`` key).

    Raises:
        UserError: the manifest is missing, not a regular file or not UTF-8 text (with the
            line), or ``policy="fail"`` and there are problems.
    """
    if policy not in ("fail", "skip"):
        raise ValueError(f"policy must be 'fail' or 'skip' (got {policy!r})")
    if target not in ("text", "label"):
        raise ValueError(f"target must be 'text' or 'label' (got {target!r})")
    entries, bad, skipped, segments = _parse(path, "text" if target == "text" else None,
                                             min_duration, max_duration)
    infos = _probe([e.audio_filepath for e in entries]) if check_audio else [None] * len(entries)
    good = []
    for entry, info in zip(entries, infos):
        found = [
            _text_problem(entry, labels) if target == "text" else _label_problem(entry, labels),
            _audio_problem(entry, info, entry.line in segments) if check_audio else None,
        ]
        found = [b for b in found if b is not None]
        bad.extend(found)
        if not found:
            good.append(entry)
    report = _report(str(path), good, bad, skipped)
    if check_audio:
        report.notes.extend(_audio_notes([i for i in infos if i is not None], sample_rate))
    if target == "text" and hasattr(labels, "unk_id"):
        report.notes.extend(_unk_note(good, labels))
    if policy == "fail" and report.problems:
        n = len(report.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in manifest {path}:"
        raise UserError(format_problems(head, report.problems))
    return report


def _report(
    path: str, good: list[ManifestEntry], bad: list[_Bad], skipped: Counter[str]
) -> ManifestReport:
    bad.sort(key=lambda b: b.line)
    dropped: dict[int, str] = {}
    for b in bad:
        dropped.setdefault(b.line, b.reason)  # an entry is counted once, by its first problem
    skipped.update(dropped.values())
    return ManifestReport(
        path=path,
        entries=good,
        problems=[_problem(path, b) for b in bad],
        skipped=dict(skipped),
    )
