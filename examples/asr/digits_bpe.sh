#!/usr/bin/env bash
# examples/asr/digits_bpe.yaml in one command, from any folder: trains its 32-piece word-piece
# tokenizer on the shipped corpus's transcripts if missing (a second), then the model (a few
# minutes on 2 CPU cores). The LAST line printed (stdout) is the absolute path of the archive.
#
#   bash examples/asr/digits_bpe.sh                 # seed 0
#   bash examples/asr/digits_bpe.sh seed=3          # arguments are Hydra overrides of the YAML
#
# Environment (defaults in brackets; relative paths are from the repository root):
#   DIGITS_BPE_TOKENIZER   the tokenizer's folder [ng_experiments/tokenizer_digits]
#   DIGITS_EXP_DIR   where runs go [ng_experiments]; the run is EXP_DIR/digits_bpe/VERSION
#   DIGITS_VERSION   the run folder's name [run-YYYYmmdd-HHMMSS]
set -euo pipefail
cd "$(dirname "$0")/../.."

tokenizer=${DIGITS_BPE_TOKENIZER:-ng_experiments/tokenizer_digits}
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

if [ ! -f "$tokenizer/tokenizer.model" ]; then
    neuralgraph asr tokenizer --manifest examples/asr/data/digits/train_manifest.json \
        --vocab-size 32 --type bpe --out "$tokenizer"
fi

neuralgraph train --exp-dir "$exp_dir" --version "$version" \
    examples/asr/digits_bpe.yaml "tokenizer_model=$tokenizer/tokenizer.model" "$@"

abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }  # usable from any folder
archive=$(ls -t "$exp_dir"/*/"$version"/*.ngm 2>/dev/null | head -n 1 || true)
if [ -z "$archive" ]; then
    echo "digits_bpe.sh: no archive in $exp_dir/*/$version/" >&2
    exit 1
fi
archive=$(abs "$archive")
echo "held-out WER: neuralgraph evaluate --model $archive" \
    "--manifest $PWD/examples/asr/data/digits/heldout_manifest.json" >&2
echo "$archive"
