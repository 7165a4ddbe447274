#!/usr/bin/env bash
# The recipe benchmarks, most needed first: every run writes its own record as soon as it ends, and a run whose
# record exists is skipped, so the script can be stopped (or time out) and started again, in later sessions too.
#
# Usage: [PRECISION=fp16] [JOBS=N] [NOTE=text] [RUN_OPTIONS=...] [OUTPUT_ROOT=/tmp/ft-recipes] \
#            benchmarks/run_recipes.sh DATASET BASE_MODEL TAG [STAGE ...]
#   TAG names the machine (and precision) in the record names: h100_bf16, h100_fp16, cpu, ...
#   Stages, in the order given (default: recipes):
#     recipes   reference recipe once and improved recipe with 3 training seeds on the reference split (the
#               reference recipe first: its time on the same machine is what the improved one is measured against),
#               then both recipes once on the grouped split
#     anchor    the improved recipe once (seed 42) on the reference split: what the variants are compared with
#               (the same record as the first seed of 'recipes')
#     variants  the improved recipe with one setting changed, on the reference split, one seed each, most telling
#               first: no Matryoshka, batch size (512, 1024, 128), one mined hard negative, the symmetric loss,
#               learning rate (2e-4, 5e-5), loss directions, 6 epochs, the plain (uncached) loss
#     seeds     2 more training seeds for the reference recipe on the reference split
#     costs     the wall-time comparison, one run after another on one machine, grouped split, one seed each: the
#               reference recipe on length-sorted mini-batches of 8 (as the others are), the improved recipe cut to
#               2 epochs, the quick recipe, then the improved recipe cut to 1 epoch; with JOBS=1, so that each has
#               the machine to itself
#   PRECISION (bf16, fp16 or fp32) overrides the machine's choice, e.g. fp16 on an H100 for what a T4 runs.
#   JOBS runs up to N benchmarks at a time (default 1), each printing to OUTPUT_ROOT/<name>.log: a small model
#   leaves a big GPU mostly idle, so several runs finish sooner together, but their times are then not those of a
#   run alone: say so in NOTE, which every record made by this call keeps (run_full.py --note).
#   RUN_OPTIONS adds run_full.py options to every run, e.g. --mini-batch-size 128 where GPU memory allows (a cached
#   loss gives the same loss and gradients for any mini-batch size; bigger ones take fewer passes).
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
jobs=${JOBS:-1}
precision=()
[ -n "${PRECISION:-}" ] && precision=(--precision "$PRECISION")
note=()
[ -n "${NOTE:-}" ] && note=(--note "$NOTE")
read -r -a options <<<"${RUN_OPTIONS:-}"
if ! [[ $jobs =~ ^[1-9][0-9]*$ ]]; then
    echo "JOBS must be a whole number of runs at a time (1 or more), got '$jobs'" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
mkdir -p "$root"
started=() # the runs put in the background, each writing its exit status to $root/<name>.status

# run SPLIT RECIPE SEEDS LABEL [run_full.py options ...]
run() {
    local split=$1 recipe=$2 seeds=$3 label=$4
    shift 4
    local name="${split}_${tag}_${label}"
    local command=($python benchmarks/run_full.py --split "$split" --recipe "$recipe" --seeds "$seeds" --name "$name"
        --dataset "$dataset" --base-model "$model" --output-dir "$root/$name" "${precision[@]}" "${note[@]}" "${options[@]}" "$@")
    echo "== $name: $seeds seed(s) $*"
    if [ "$jobs" -eq 1 ]; then
        "${command[@]}"
        return
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    rm -f "$root/$name.status"
    (
        status=0
        "${command[@]}" >"$root/$name.log" 2>&1 || status=$?
        echo "$status" >"$root/$name.status"
    ) &
    started+=("$name")
}

for stage in "${stages[@]}"; do
    case $stage in
    recipes | anchor | variants | seeds | costs) ;;
    *)
        echo "unknown stage '$stage': use recipes, anchor, variants, seeds or costs" >&2
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
    anchor)
        run reference improved 1 improved
        ;;
    variants)
        run reference improved 1 improved_no_matryoshka --no-matryoshka
        run reference improved 1 improved_b512 --train-batch-size 512
        run reference improved 1 improved_b1024 --train-batch-size 1024
        run reference improved 1 improved_b128 --train-batch-size 128
        run reference improved 1 improved_hard_negative --hard-negatives 1
        run reference improved 1 improved_symmetric --loss CachedMultipleNegativesSymmetricRankingLoss
        run reference improved 1 improved_lr2e-4 --learning-rate 2e-4
        run reference improved 1 improved_lr5e-5 --learning-rate 5e-5
        run reference improved 1 improved_four_directions \
            --directions query_to_doc,doc_to_query,query_to_query,doc_to_doc
        run reference improved 1 improved_both_directions --directions query_to_doc,doc_to_query
        run reference improved 1 improved_epochs6 --epochs 6
        run reference improved 1 improved_uncached --loss MultipleNegativesRankingLoss
        ;;
    seeds)
        run reference reference 3 reference
        ;;
    costs)
        run grouped reference 1 cost_reference_sorted8 --mini-batch-size 8
        run grouped improved 1 cost_improved_epochs2 --epochs 2
        run grouped quick 1 cost_quick
        run grouped improved 1 cost_improved_epochs1 --epochs 1
        ;;
    esac
done
wait
failed=()
for name in "${started[@]}"; do
    [ "$(cat "$root/$name.status" 2>/dev/null)" = 0 ] || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]} (their logs: $root/<name>.log)" >&2
    exit 1
fi
