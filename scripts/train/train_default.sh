#!/usr/bin/env bash
# Train the bundled default model (v2.1) and the models its claims are measured against, each step from its recipe
# file (recipes/: one TOML file of `mrl-dna train` options per run, recipes/README.md), on the MetaPhlAn2
# marker-gene corpus. This script only wires the data: the corpus, the validation genomes, the output directory of
# each step and the step it starts from; the recipe decides the weights.
#
# usage: scripts/train/train_default.sh [CORPUS_DIR] [OUT_DIR] [what...]
#   CORPUS_DIR  a corpus built by scripts/data/get_training_data.sh (train.fa, val/)    [default data/corpus/v2]
#   OUT_DIR     where the runs go, OUT_DIR/STEP for each step                      [default runs/v2.1]
#   what        any of these steps, in the order given                             [default stage1 model twin]
#     stage1    RECIPES/stage1.toml: a linear head on the canonical k-mer profile (--kmer-only) at a high learning
#               rate, from random init: the start of every other step.
#     model     RECIPES/model.toml, from OUT_DIR/stage1 (--head-from): THE DEFAULT MODEL (with recipes/v2.1, the
#               shipped v2.1; with recipes/v2, bench/models/v2).
#     twin      RECIPES/twin-stage1.toml, then RECIPES/twin.toml from OUT_DIR/twin-stage1: every loss at the full
#               width only (--no-matryoshka), the Matryoshka baseline (v2.1's: bench/models/no-matryoshka).
#     encoder, encoder-frozen   RECIPES/encoder.toml, RECIPES/encoder-frozen.toml from OUT_DIR/stage1: the
#               Caduceus-style encoder beside stage 1's k-mer head (bench/HISTORY.md, issue 11).
#     locus-mlp, locus-encoder  RECIPES/locus-*.toml (v2.1 only), from HEAD_FROM [mrl_dna/default_model]: issue 21's
#               learned part on the locus dims of the shipped model, the MLP control and the BiMamba encoder.
# Every run resumes: rerun the same command after a stop (the script passes --resume when a run has checkpoints).
# Validation: 40 held-out corpus genomes (the first 40 of CORPUS_DIR/val by name), genome and locus top-1.
#
# Environment (overrides; everything else is in the recipe):
#   RECIPES [recipes/v2.1]: the folder of recipe files (recipes/v2: the previous default v2)
#   HEAD_FROM [mrl_dna/default_model]: the model whose head the locus-* steps freeze
#   THREADS [the recipe's: 2 for v2.1, 1 for v2; a run's bits follow its thread count] DEVICE [auto]
#   NPROC [1: > 1 = torchrun] WORKERS [train's default: sampler processes; the batches do not depend on them]
#   OPTS [none: more `mrl-dna train` options for every step, e.g. OPTS="--steps 20 --eval-every 10"]
# On the 2-core VM: a v2.1 k-mer-only step takes 5-7 min on 2 threads, a v2 one ~1 min on one; `encoder` ~3-5 s
# per step at 96 windows per batch, ~60 s at 768 (a GPU's job).
set -euo pipefail

CORPUS=${1:-data/corpus/v2}
OUT=${2:-runs/v2.1}
shift $(( $# < 2 ? $# : 2 ))
WHAT=("$@")
[[ ${#WHAT[@]} -gt 0 ]] || WHAT=(stage1 model twin)
RECIPES=${RECIPES:-recipes/v2.1}

die() { echo "train_default.sh: $*" >&2; exit 1; }
for old in KMER BATCH_SIZE STAGE1_STEPS STAGE1_LR STEPS LR WARMUP POOL_FEATURES EVAL_EVERY CKPT_EVERY SEED; do
    [[ -z "${!old:-}" ]] || die "$old is no longer read: the recipe files hold it (recipes/README.md); RECIPES=recipes/v2" \
        "runs v2's recipes (KMER=4 BATCH_SIZE=96), the default v2.1's (KMER=6 BATCH_SIZE=768); override an option" \
        "with OPTS, e.g. OPTS=\"--steps 20\""
done
[[ -f "$CORPUS/train.fa" && -d "$CORPUS/val" ]] \
    || die "$CORPUS holds no corpus (train.fa, val/); build it with scripts/data/get_training_data.sh"
[[ -d "$RECIPES" ]] || die "no recipe folder $RECIPES; run from the repository root, or set RECIPES"
for what in "${WHAT[@]}"; do  # every step and its recipe files, before anything runs
    case $what in
        twin) files=(twin-stage1 twin) ;;
        stage1|model|encoder|encoder-frozen|locus-mlp|locus-encoder) files=("$what") ;;
        *) die "unknown step '$what'; give any of: stage1 model twin encoder encoder-frozen locus-mlp locus-encoder" ;;
    esac
    for f in "${files[@]}"; do [[ -f "$RECIPES/$f.toml" ]] || die "no recipe $RECIPES/$f.toml for step '$what'"; done
done

mkdir -p "$OUT/val40"
mapfile -t VAL < <(ls "$CORPUS/val" | sort | head -n 40)
for f in "${VAL[@]}"; do ln -sf "$(cd "$CORPUS/val" && pwd)/$f" "$OUT/val40/$f"; done

if [[ "${NPROC:-1}" -gt 1 ]]; then
    LAUNCH=(python3 -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m mrl_dna)  # = torchrun
else
    LAUNCH=(python3 -m mrl_dna)
fi
OVERRIDES=()
[[ -n "${THREADS:-}" ]] && OVERRIDES+=(--threads "$THREADS")
[[ -n "${DEVICE:-}" ]] && OVERRIDES+=(--device "$DEVICE")
[[ -n "${WORKERS:-}" ]] && OVERRIDES+=(--workers "$WORKERS")
read -r -a EXTRA <<< "${OPTS:-}"

recipe() {  # recipe STEP [OPTIONS...]: train OUT/STEP from RECIPES/STEP.toml; resume a stopped run, skip a done one
    local step=$1; shift
    local dir=$OUT/$step file=$RECIPES/$step.toml
    if [[ -f "$dir/model.safetensors" ]]; then echo "train_default.sh: $dir is done" >&2; return; fi
    local resume=()
    compgen -G "$dir/checkpoints/step-*.pt" >/dev/null && resume=(--resume)
    echo "train_default.sh: $file -> $dir" >&2
    "${LAUNCH[@]}" train "$CORPUS/train.fa" --val-genomes "$OUT/val40" --config "$file" -o "$dir" "$@" \
        "${OVERRIDES[@]}" "${EXTRA[@]}" "${resume[@]}"
}

for what in "${WHAT[@]}"; do
    case $what in
        stage1) recipe stage1 ;;
        model) recipe model --head-from "$OUT/stage1" ;;
        twin) recipe twin-stage1; recipe twin --head-from "$OUT/twin-stage1" ;;
        encoder) recipe encoder --head-from "$OUT/stage1" ;;
        encoder-frozen) recipe encoder-frozen --head-from "$OUT/stage1" ;;
        locus-mlp) recipe locus-mlp --head-from "${HEAD_FROM:-mrl_dna/default_model}" ;;
        locus-encoder) recipe locus-encoder --head-from "${HEAD_FROM:-mrl_dna/default_model}" ;;
    esac
done
echo "train_default.sh: done. To ship: cp $OUT/model/{config.json,model.safetensors} mrl_dna/default_model/ and" \
    "cp $OUT/twin/{config.json,model.safetensors} bench/models/no-matryoshka/ (then the cards and README)" >&2
