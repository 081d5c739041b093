#!/usr/bin/env bash
# The README's main job: install, train the small digit recognizer on the shipped corpus
# (a few minutes on 2 CPU cores), and transcribe a held-out voice with it.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[asr]'
rm -rf ng_experiments/digits_small/quickstart
neuralgraph train examples/asr/digits_small.yaml --version quickstart
neuralgraph transcribe --model ng_experiments/digits_small/quickstart/digits_small.ngm \
    examples/asr/data/digits/heldout/00000.flac examples/asr/data/digits/heldout/00001.flac
neuralgraph evaluate --model ng_experiments/digits_small/quickstart/digits_small.ngm \
    --manifest examples/asr/data/digits/heldout_manifest.json
