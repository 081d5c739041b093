"""Copy a manifest's audio with quiet padding around it or with its formants moved.

    python benchmarks/asr_quality/perturb_heldout.py MANIFEST OUT --pad 0.3
    python benchmarks/asr_quality/perturb_heldout.py MANIFEST OUT --formant 1.1

``--pad S`` puts S seconds of near-silence (white noise at -80 dBFS) before and after every
file: a recording with pauses around the speech, where the corpus is trimmed tightly.
``--formant R`` moves every file's formants by the ratio R at the same pitch and tempo
(``neuralgraph_audio.formant_shift``): R > 1 is a shorter vocal tract. OUT gets the files
under the same relative paths and a manifest with the same name; score it with per_voice.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import soundfile as sf
import torch

from neuralgraph_audio import formant_shift, read_audio

SAMPLE_RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pad", type=float, default=0.0, help="seconds before and after")
    parser.add_argument("--formant", type=float, default=1.0, help="formant ratio")
    args = parser.parse_args()

    torch.manual_seed(0)
    lines = []
    for line in args.manifest.read_text().splitlines():
        entry = json.loads(line)
        audio = read_audio(str(args.manifest.parent / entry["audio_filepath"]),
                           sample_rate=SAMPLE_RATE)
        audio = formant_shift(audio, args.formant)
        pad = round(args.pad * SAMPLE_RATE)
        audio = torch.cat([torch.randn(pad) * 1e-4, audio, torch.randn(pad) * 1e-4])
        target = args.out / entry["audio_filepath"]
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, audio.numpy(), SAMPLE_RATE)
        lines.append(json.dumps({**entry, "duration": audio.numel() / SAMPLE_RATE}))
    (args.out / args.manifest.name).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
