#!/usr/bin/env bash
# The recipe benchmarks, most needed first: every run writes its own record as soon as it ends, and a run whose
# record exists is skipped, so the script can be stopped (or time out) and started again, in later sessions too.
#
# Usage: [PRECISION=fp16] [OUTPUT_ROOT=/tmp/ft-recipes] benchmarks/run_recipes.sh DATASET BASE_MODEL TAG [STAGE ...]
#   TAG names the machine (and precision) in the record names: h100_bf16, h100_fp16, cpu, ...
#   Stages, in the order given (default: recipes):
#     recipes   reference recipe once and improved recipe with 3 training seeds on the reference split (the
#               reference recipe first: its time on the same machine is what the improved one is measured against),
#               then both recipes once on the grouped split
#     variants  the improved recipe with one setting changed, on the reference split, one seed each: batch size
#               (128, 512, 1024), learning rate (5e-5, 2e-4), 6 epochs, loss directions, the symmetric loss, one
#               mined hard negative, no Matryoshka, the plain (uncached) loss
#     seeds     2 more training seeds for the reference recipe on the reference split
#   PRECISION (bf16, fp16 or fp32) overrides the machine's choice, e.g. fp16 on an H100 for what a T4 runs.
# Records: benchmarks/results/<split>_<TAG>_<recipe or variant>_seed<S>.json; then run benchmarks/summarize.py.
# Every run trains on all training rows: about 2 to 5 minutes each on an H100, hours each on a 2-core CPU.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: [PRECISION=fp16] $0 DATASET BASE_MODEL TAG [recipes|variants|seeds ...]" >&2
    exit 2
fi
dataset=$(realpath "$1")
model=$(realpath "$2")
tag=$3
shift 3
stages=("${@:-recipes}")
python=${PYTHON:-python3}
root=${OUTPUT_ROOT:-/tmp/ft-recipes}
precision=()
[ -n "${PRECISION:-}" ] && precision=(--precision "$PRECISION")
cd "$(dirname "$0")/.."

# run SPLIT RECIPE SEEDS LABEL [run_full.py options ...]
run() {
    local split=$1 recipe=$2 seeds=$3 label=$4
    shift 4
    local name="${split}_${tag}_${label}"
    echo "== $name: $seeds seed(s) $*"
    $python benchmarks/run_full.py --split "$split" --recipe "$recipe" --seeds "$seeds" --name "$name" \
        --dataset "$dataset" --base-model "$model" --output-dir "$root/$name" "${precision[@]}" "$@"
}

for stage in "${stages[@]}"; do
    case $stage in
    recipes | variants | seeds) ;;
    *)
        echo "unknown stage '$stage': use recipes, variants or seeds" >&2
        exit 2
        ;;
    esac
done

for stage in "${stages[@]}"; do
    case $stage in
    recipes)
        run reference reference 1 reference
        run reference improved 3 improved
        run grouped improved 1 improved
        run grouped reference 1 reference
        ;;
    variants)
        run reference improved 1 improved_b128 --train-batch-size 128
        run reference improved 1 improved_b512 --train-batch-size 512
        run reference improved 1 improved_b1024 --train-batch-size 1024
        run reference improved 1 improved_lr5e-5 --learning-rate 5e-5
        run reference improved 1 improved_lr2e-4 --learning-rate 2e-4
        run reference improved 1 improved_epochs6 --epochs 6
        run reference improved 1 improved_both_directions --directions query_to_doc,doc_to_query
        run reference improved 1 improved_four_directions \
            --directions query_to_doc,doc_to_query,query_to_query,doc_to_doc
        run reference improved 1 improved_symmetric --loss CachedMultipleNegativesSymmetricRankingLoss
        run reference improved 1 improved_hard_negative --hard-negatives 1
        run reference improved 1 improved_no_matryoshka --no-matryoshka
        run reference improved 1 improved_uncached --loss MultipleNegativesRankingLoss
        ;;
    seeds)
        run reference reference 3 reference
        ;;
    esac
done
