"""Voices and engines: the synthesizers' programs, the default voices and the checks that the
programs and voices asked for are installed here.

A voice is "engine:name" with engine espeak (espeak-ng), flite or festival; espeak voices also
get a variant ("+m3") per utterance.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from neuralgraph import UserError

SAMPLE_RATE = 16000

# Base voices: "engine:name". espeak voices also get a variant ("+m3") per utterance.
DEFAULT_VOICES: tuple[str, ...] = (
    "espeak:en-gb",
    "espeak:en-us",
    "espeak:en-gb-x-rp",
    "espeak:en-gb-x-gbclan",
    "espeak:en-gb-x-gbcwmd",
    "espeak:en-029",
    "espeak:en-us-nyc",
    "espeak:en-gb-scotland",
    "flite:awb",
    "flite:rms",
    "flite:slt",
    "flite:kal",
    "flite:kal16",
    "festival:kal_diphone",
    "festival:ked_diphone",
    "festival:cmu_us_slt_arctic_hts",
)
# One speaker is held out in every engine that has him: flite's kal and kal16 and festival's
# kal_diphone are all Kal's diphones. With him, one espeak accent. (flite's slt and festival's
# cmu_us_slt_arctic_hts are one speaker too; both train.)
DEFAULT_HELDOUT_VOICES: tuple[str, ...] = (
    "espeak:en-gb-scotland",
    "flite:kal",
    "flite:kal16",
    "festival:kal_diphone",
)
# flite and festival voices are few; in train and dev each utterance of theirs is pitch-shifted
# (formants with it, as sox's `pitch` does) by a random amount in this range, in cents, to make
# more speakers of them. Heldout voices are left as they are.
SHIFT_CENTS = (-300.0, 300.0)
# espeak-ng variants that stay intelligible (no robot echo, no novelty voices); "" is the plain
# accent voice.
ESPEAK_VARIANTS: tuple[str, ...] = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "croak", "whisper", "whisperf", "klatt", "klatt2", "klatt3", "Alex", "Andy", "Annie",
    "Denis", "Gene", "Lee", "Mike", "adam", "anika", "antonio", "aunty", "belinda", "benjamin",
    "boris", "david", "ed", "edward", "grandma", "grandpa", "linda", "max", "michel", "paul",
    "quincy", "rob", "robert", "steph", "travis", "victor", "zac",
)  # fmt: skip

# engine -> (program, Debian packages that provide it and its voices)
_PROGRAMS = {
    "espeak": ("espeak-ng", "espeak-ng"),
    "flite": ("flite", "flite"),
    "festival": ("festival", "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"),
    "sox": ("sox", "sox"),
}
_FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))


def _run(cmd: list[str], data: bytes | None = None) -> bytes:
    """Run a program and return its stdout; a failure raises RuntimeError with its stderr."""
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}): {err or 'no output'}")
    return proc.stdout


def _check_programs(engines: Iterable[str]) -> None:
    """Raise UserError naming the Debian package for each missing program."""
    missing = [_PROGRAMS[e] for e in sorted({*engines, "sox"}) if not shutil.which(_PROGRAMS[e][0])]
    if missing:
        names = ", ".join(p for p, _ in missing)
        packages = " ".join(pkg for _, pkg in missing)
        raise UserError(
            f"speech synthesis needs {names}, not found on PATH: "
            f"install the Debian packages with `apt-get install {packages}`"
        )


def _installed_voices(engine: str) -> set[str] | None:
    """The voice names an engine has on this machine (None where it cannot tell)."""
    if engine == "espeak":
        out = _run(["espeak-ng", "--voices=en"]).decode()
        return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
    if engine == "flite":
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False)
        return set(out.stdout.replace("Voices available:", "").split())
    if engine == "festival":
        return {p.name for d in _FESTIVAL_VOICE_DIRS if d.is_dir() for p in d.glob("*/*")}
    return None


def _check_voice_names(voices: Sequence[str], heldout: Sequence[str]) -> None:
    """Raise UserError for a malformed voice name or a heldout voice not among ``voices``."""
    for voice in [*voices, *heldout]:
        engine, _, name = voice.partition(":")
        if engine not in ("espeak", "flite", "festival") or not name:
            raise UserError(
                f"voice {voice!r} must be 'espeak:NAME', 'flite:NAME' or 'festival:NAME'"
            )
    stray = [v for v in heldout if v not in voices]
    if stray:
        raise UserError(f"heldout voices {stray} must be among the voices {list(voices)}")


def _check_installed(voices: Sequence[str]) -> None:
    """Raise UserError for a missing program or a voice its engine does not have here."""
    engines = sorted({v.split(":", 1)[0] for v in voices})
    _check_programs(engines)
    for engine in engines:
        installed = _installed_voices(engine)
        names = [v.split(":", 1)[1] for v in voices if v.startswith(engine + ":")]
        absent = [n for n in names if installed is not None and n not in installed]
        if absent:
            hint = " (Debian package festvox-kallpc16k)" if engine == "festival" else ""
            raise UserError(
                f"{engine} voices {absent} are not installed{hint}; "
                f"installed: {' '.join(sorted(installed or ()))}"
            )
