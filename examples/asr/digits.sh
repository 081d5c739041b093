#!/usr/bin/env bash
# The digits quality recipe (examples/asr/digits.yaml) in one command, from any folder:
# builds its data if missing -- an 8000/400/600-utterance synthetic corpus (about 4 minutes on
# 2 cores) and a 56-piece word-piece tokenizer, in data/digits8k -- then trains (at most 15
# minutes on 2 CPU cores). The LAST line printed (stdout) is the absolute path of the archive.
#
#   bash examples/asr/digits.sh                 # seed 0
#   bash examples/asr/digits.sh seed=3          # arguments are Hydra overrides of digits.yaml
#
# Environment (defaults in brackets; relative paths are from the repository root):
#   DIGITS_DATA      the data folder [data/digits8k]; delete it to build it again
#   DIGITS_TRAIN, DIGITS_DEV, DIGITS_HELDOUT   utterances per split [8000, 400, 600]
#   DIGITS_EXP_DIR   where runs go [ng_experiments]; the run is EXP_DIR/digits/VERSION
#   DIGITS_VERSION   the run folder's name [run-YYYYmmdd-HHMMSS]
# A smoke run (a minute): DIGITS_DATA=/tmp/d DIGITS_TRAIN=40 DIGITS_DEV=8 DIGITS_HELDOUT=8 \
#   bash examples/asr/digits.sh trainer.max_steps=2
# Needs espeak-ng, flite, festival (with festvox-kallpc16k, festvox-kdlpc16k,
# festvox-us-slt-hts) and sox: see docs/asr_corpus.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

data=${DIGITS_DATA:-data/digits8k}
exp_dir=${DIGITS_EXP_DIR:-ng_experiments}
version=${DIGITS_VERSION:-run-$(date +%Y%m%d-%H%M%S)}

# neuralgraph with the ASR plugin: the active environment's, else .venv's (made once).
if ! { command -v neuralgraph >/dev/null && python3 -c 'import neuralgraph_asr' 2>/dev/null; }
then
    [ -d .venv ] || python3 -m venv .venv
    . .venv/bin/activate
    if ! python -c 'import neuralgraph_asr' 2>/dev/null; then
        python -m pip install -q --upgrade pip
        python -m pip install -q -e '.[asr]'
    fi
fi

if [ ! -f "$data/train_manifest.json" ] || [ ! -f "$data/dev_manifest.json" ] \
        || [ ! -f "$data/heldout_manifest.json" ]; then
    neuralgraph asr synth --out "$data" --train "${DIGITS_TRAIN:-8000}" \
        --dev "${DIGITS_DEV:-400}" --heldout "${DIGITS_HELDOUT:-600}" --kind digits --seed 1
    rm -rf "$data/tokenizer_words"  # a new corpus needs a new tokenizer
fi
if [ ! -f "$data/tokenizer_words/tokenizer.model" ]; then
    neuralgraph asr tokenizer --manifest "$data/train_manifest.json" \
        --vocab-size 56 --type bpe --out "$data/tokenizer_words"
fi

neuralgraph train --exp-dir "$exp_dir" --version "$version" \
    examples/asr/digits.yaml "data_dir=$data" "$@"

abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }  # usable from any folder
archive=$(ls -t "$exp_dir"/*/"$version"/*.ngm 2>/dev/null | head -n 1 || true)
if [ -z "$archive" ]; then
    echo "digits.sh: no archive in $exp_dir/*/$version/" >&2
    exit 1
fi
archive=$(abs "$archive")
echo "held-out WER: neuralgraph transcribe --model $archive --vtln speaker --wer" \
    "--manifest $(abs "$data")/heldout_manifest.json" >&2
echo "$archive"
