#!/usr/bin/env bash
# The speech-commands recipe (examples/asr/matchboxnet_3x1x64.yaml, NeMo's MatchboxNet 3x1x64)
# in one command, from any folder: builds its data if missing -- a 6000/600/1200-clip synthetic
# commands corpus of 12 classes (ten words, unknown, silence; about 2 minutes on 2 cores) with
# background-noise files, in data/commands -- then trains (at most 15 minutes on 2 CPU cores).
# The LAST line printed (stdout) is the absolute path of the archive.
#
#   bash examples/asr/speech_commands.sh               # seed 0, Speech Commands' ten words
#   bash examples/asr/speech_commands.sh seed=3        # arguments are Hydra overrides
#   COMMANDS_WORDS="lights curtains music" COMMANDS_DATA=data/home \
#       bash examples/asr/speech_commands.sh           # your own words (+ unknown, silence)
#
# Environment (defaults in brackets; relative paths are from the repository root):
#   COMMANDS_DATA     the data folder [data/commands]; delete it to build it again
#   COMMANDS_WORDS    the target words, separated by spaces [yes no up down left right on off
#                     stop go]; the labels and their number are read from the data's labels.json
#   COMMANDS_TRAIN, COMMANDS_DEV, COMMANDS_HELDOUT   clips per split [6000, 600, 1200]
#   COMMANDS_EXP_DIR  where runs go [ng_experiments]; the run is EXP_DIR/matchboxnet_3x1x64/VERSION
#   COMMANDS_VERSION  the run folder's name [run-YYYYmmdd-HHMMSS]
# A smoke run (a minute): COMMANDS_DATA=/tmp/c COMMANDS_TRAIN=48 COMMANDS_DEV=12 \
#   COMMANDS_HELDOUT=12 bash examples/asr/speech_commands.sh trainer.max_epochs=1
# Needs espeak-ng, flite, festival (with festvox-kallpc16k, festvox-kdlpc16k,
# festvox-us-slt-hts) and sox: see docs/asr_corpus.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

data=${COMMANDS_DATA:-data/commands}
exp_dir=${COMMANDS_EXP_DIR:-ng_experiments}
version=${COMMANDS_VERSION:-run-$(date +%Y%m%d-%H%M%S)}

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
        || [ ! -f "$data/heldout_manifest.json" ] || [ ! -f "$data/noise_manifest.json" ] \
        || [ ! -f "$data/labels.json" ]; then
    words=()
    if [ -n "${COMMANDS_WORDS:-}" ]; then
        read -r -a list <<< "$COMMANDS_WORDS"
        words=(--words "${list[@]}")
    fi
    neuralgraph asr synth --kind commands --out "$data" --train "${COMMANDS_TRAIN:-6000}" \
        --dev "${COMMANDS_DEV:-600}" --heldout "${COMMANDS_HELDOUT:-1200}" --seed 1 \
        ${words[@]+"${words[@]}"}
fi

# The labels the data was made with, as overrides: labels=["yes", ...] num_classes=12.
labels=$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' \
    "$data/labels.json")
count=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' \
    "$data/labels.json")

neuralgraph train --exp-dir "$exp_dir" --version "$version" \
    examples/asr/matchboxnet_3x1x64.yaml "data_dir=$data" "labels=$labels" \
    "num_classes=$count" "$@"

abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }  # usable from any folder
archive=$(ls -t "$exp_dir"/*/"$version"/*.ngm 2>/dev/null | head -n 1 || true)
if [ -z "$archive" ]; then
    echo "speech_commands.sh: no archive in $exp_dir/*/$version/" >&2
    exit 1
fi
archive=$(abs "$archive")
echo "held-out accuracy: neuralgraph evaluate --model $archive --json" \
    "--manifest $(abs "$data")/heldout_manifest.json" >&2
echo "$archive"
