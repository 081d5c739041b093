"""Re-render the held-out split of the digits corpus with another silence trim.

    python benchmarks/asr_quality/retrim_heldout.py OUT THRESHOLD_DB MARGIN_S

The corpus's held-out split (``neuralgraph asr synth ... --heldout 600 --seed 1``) is rendered
again with the same texts, voices and levels; only the trim of leading/trailing silence changes
(the synthesizer's default is -40 dB below the loudest 10 ms frame, 20 ms margin). With -40 0.02
the files are identical to the corpus's. Used to test whether the trim clips word endings.
"""

from __future__ import annotations

import sys

from neuralgraph_asr import synth
from neuralgraph_asr.synth import render


def main() -> None:
    out, threshold_db, margin_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    original = render._trim
    render._trim = lambda audio: original(audio, threshold_db=threshold_db, margin_s=margin_s)
    synth.synthesize_corpus(out, n_train=0, n_dev=0, n_heldout=600, seed=1, bits=16)


if __name__ == "__main__":
    main()
