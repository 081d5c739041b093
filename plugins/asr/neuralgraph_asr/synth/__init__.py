"""A synthetic multi-speaker English speech corpus, made offline with Debian's synthesizers.

``synthesize_corpus`` speaks digit strings ("three seven nine oh two") and short sentences with
espeak-ng (several accents, each with dozens of voice variants, random rate and pitch), flite
(awb, rms, slt, kal, kal16) and festival (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts) —
one engine drawn uniformly per utterance, then one of its voices —, resamples everything to
16 kHz mono with sox, pitch-shifts flite and festival utterances of train and dev by up to
±3 semitones (sox `pitch`) to make more speakers of those few voices, trims the synthesizers'
silences, pads a little random silence, sets a random level, optionally
adds coloured noise at a random SNR, and writes FLAC files with NeMo JSON-lines manifests:

    OUT/train_manifest.json     OUT/train/00000.flac ...
    OUT/dev_manifest.json       OUT/dev/00000.flac ...      (train's voices, other utterances)
    OUT/heldout_manifest.json   OUT/heldout/00000.flac ...  (voices never used in train or dev)

Each manifest line is ``{"audio_filepath": "train/00000.flac", "duration": 1.234,
"text": "three seven", "speaker": "espeak:en-gb-x-rp+f3"}``, plus ``"pitch_shift_cents"``
for a pitch-shifted flite or festival utterance; paths are relative to the manifest's folder.
Texts use only the 28-label character set (space, a-z, apostrophe).

``kind="commands"`` makes a speech-commands classification corpus instead: each clip one of
the target ``words`` (Speech Commands' ten by default), an `unknown` word of a built-in list,
or `silence` (background noise alone), with NeMo's ``label`` key, ``labels.json`` and
``noise/`` files of background noise for augmentation.

Every random choice is drawn in the parent process from the seed (one stream per split), so the
corpus is the same whatever the number of workers; the workers only run the synthesizers.

Modules: ``voices`` (engines, default voices, checks of installed programs and voices),
``texts`` (digit strings, sentences), ``render`` (what the workers do: synthesis, resampling,
pitch shift, trim, noise, FLAC files), ``corpus`` (plans drawn from the seed, manifests,
``synthesize_corpus``) and ``cli`` (``neuralgraph asr synth``, its progress report).
"""

from __future__ import annotations

from neuralgraph_asr.synth.cli import configure_synth_parser, run_synth
from neuralgraph_asr.synth.corpus import KINDS, SPLITS, synthesize_corpus
from neuralgraph_asr.synth.texts import (
    CHARSET,
    COMMAND_WORDS,
    UNKNOWN_WORDS,
    digit_text,
    sentence_pool,
    unknown_words,
)
from neuralgraph_asr.synth.voices import (
    DEFAULT_HELDOUT_VOICES,
    DEFAULT_VOICES,
    ESPEAK_VARIANTS,
    SAMPLE_RATE,
    SHIFT_CENTS,
)

__all__ = [
    # the corpus
    "synthesize_corpus",
    "SPLITS",
    "KINDS",
    "SAMPLE_RATE",
    # voices
    "DEFAULT_VOICES",
    "DEFAULT_HELDOUT_VOICES",
    "ESPEAK_VARIANTS",
    "SHIFT_CENTS",
    # texts
    "CHARSET",
    "digit_text",
    "sentence_pool",
    "COMMAND_WORDS",
    "UNKNOWN_WORDS",
    "unknown_words",
    # the command line
    "configure_synth_parser",
    "run_synth",
]
