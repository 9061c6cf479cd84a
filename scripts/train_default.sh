#!/usr/bin/env bash
# Train the bundled default model (v2) with `mrl-dna train` on the MetaPhlAn2 marker-gene corpus, and the models
# its claims are measured against.
#
# usage: scripts/train_default.sh [CORPUS_DIR] [OUT_DIR] [what...]
#   CORPUS_DIR  a corpus built by scripts/get_training_data.sh (train.fa, val/)    [default data/corpus/v2]
#   OUT_DIR     where the runs go                                                   [default runs/v2]
#   what        any of: stage1 model twin encoder encoder-frozen locus-mlp locus-encoder   [default stage1 model twin]
#     stage1    a linear head on the canonical k-mer profile (--kmer-only), trained with the v2 objective at a
#               high learning rate: the start of every other run.
#     model     THE DEFAULT MODEL: stage 1 continued with the final schedule, still --kmer-only (with
#               KMER=6 BATCH_SIZE=768 THREADS=2 the shipped v2.1; with the defaults below the previous v2).
#     twin      stage 1 and the model again with --no-matryoshka (every loss at the full width only): the
#               Matryoshka baseline, into OUT_DIR/twin-stage1 and OUT_DIR/twin (shipped in bench/models/no-matryoshka).
#     encoder   the Caduceus-style candidate that did NOT earn its cost (bench/RESULTS.md, issue 11): stage 1's head
#               on the k-mer columns, 0 on the columns of a new encoder (--head-from; mean-patch stem, 1024 pooled
#               features batch-normalised), so step 0 embeds exactly as stage 1; encoder and head then train
#               together. Everything it gains over `model` would be what the encoder earns.
#     encoder-frozen  the same, with --freeze-kmer-head: the k-mer columns stay stage 1's, only the encoder and
#               its head columns train, so it cannot be switched off by the k-mer part learning around it.
#     locus-mlp, locus-encoder  issue 21: a learned part added to v2.1 where its linear k-mer map runs out (a window's
#               locus at 20-30% divergence), with v2.1's head frozen (--head-from HEAD_FROM --freeze-kmer-head: a
#               6-mer model, so KMER=6), the learned features layer-normalised per window (--pool-norm layer) and
#               written only to the locus dims (--encoder-dims-from 128: every genome prefix stays v2.1's), kept
#               from collapsing to one vector for all windows by a variance term (--feature-variance), and a
#               queue of QUEUE earlier keys as extra locus negatives (--queue-size, MoCo), on BATCH_SIZE windows.
#               locus-mlp: one GELU layer of POOL_FEATURES units on the 6-mer profile (--backbone kmer-mlp), the
#               nonlinear control; locus-encoder: the BiMamba encoder (mean-patch stem, POOL_FEATURES pooled GELU
#               features), trunk in bf16 on a CPU (--cpu-bf16). Same schedule for both: STEPS21, LR21, WARMUP.
#               Issue 21's runs (bench/RESULTS.md "Issue 21"), one thread each, the shipped default as the head:
#                 HEAD_FROM=mrl_dna/default_model KMER=6 BATCH_SIZE=64 CKPT_EVERY=100 \
#                   scripts/train_default.sh data/corpus/v2 runs/i21 locus-mlp locus-encoder
# Every run resumes: rerun the same command after a stop (the script passes --resume when a run has checkpoints).
#
# The objective (mrl_dna/train: genome blocks + two losses), coarse to fine:
#   batches of 12 genomes x 8 windows of 2 kb; every window's positive is its own copy shifted by up to 512 bp
#   and evolved at 0-30% (substitutions, small indels, half reverse-complemented);
#   dims 8..128: the genome loss (the copy of ANOTHER window of the same genome is the positive);
#   dims 256, 512: the locus loss (a window must find its own copy; its genome's 7 other windows are negatives).
# Validation: 40 held-out corpus genomes (the first 40 of CORPUS_DIR/val by name), genome and locus top-1.
#
# Sizes and schedule come from the environment (defaults in brackets: v2's recipe, rebuilt bit for bit by them;
# the shipped v2.1 = KMER=6 BATCH_SIZE=768 THREADS=2, bench/RESULTS.md "Default model v2.1"):
#   STAGE1_STEPS [1000] STAGE1_LR [2e-3] STEPS [1500] LR [1e-3] WARMUP [100] POOL_FEATURES [1024]
#   issue 21's runs: HEAD_FROM [OUT_DIR/model] QUEUE [4096] STEPS21 [4000] LR21 [1e-3] FEATURE_VARIANCE [1]
#   KMER [4: k of the canonical k-mer profile every run reads] BATCH_SIZE [96: windows per batch, 8 per genome]
#   THREADS [1: the bits of a run follow its thread count; 1 also leaves a core to a second job]
#   DEVICE [auto] NPROC [1: > 1 = torchrun] EVAL_EVERY [250] CKPT_EVERY [250] SEED [0]
#   WORKERS [train's default: 0 on <= 4 cores, else cores/2 up to 6]: sampler processes; the batches do not
#   depend on it, so more only feeds a GPU faster
# On this 2-core VM: a k-mer-only run takes ~1 min on one core with the defaults, 5-7 min on 2 threads with
# v2.1's recipe; `encoder` ~3-5 s per step at 96 windows per batch, ~60 s at 768 (a GPU's job).
set -euo pipefail

CORPUS=${1:-data/corpus/v2}
OUT=${2:-runs/v2}
shift $(( $# < 2 ? $# : 2 ))
WHAT=("$@")
[[ ${#WHAT[@]} -gt 0 ]] || WHAT=(stage1 model twin)

die() { echo "train_default.sh: $*" >&2; exit 1; }
[[ -f "$CORPUS/train.fa" && -d "$CORPUS/val" ]] \
    || die "$CORPUS holds no corpus (train.fa, val/); build it with scripts/get_training_data.sh"

mkdir -p "$OUT/val40"
mapfile -t VAL < <(ls "$CORPUS/val" | sort | head -n 40)
for f in "${VAL[@]}"; do ln -sf "$(cd "$CORPUS/val" && pwd)/$f" "$OUT/val40/$f"; done

if [[ "${NPROC:-1}" -gt 1 ]]; then
    LAUNCH=(python3 -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m mrl_dna)  # = torchrun
else
    LAUNCH=(python3 -m mrl_dna)
fi
COMMON=("$CORPUS/train.fa" --val-genomes "$OUT/val40"
    --dims 8,16,32,64,128,256,512 --genome-dims 8,16,32,64,128 --locus-dims 256,512
    --windows-per-genome 8 --batch-size "${BATCH_SIZE:-96}" --max-shift 0.25 --max-mutation-rate 0.3 --multi-window-prob 0
    --cosent-weight 0 --head-hidden 0 --kmer-features "${KMER:-4}" --seed "${SEED:-0}" --threads "${THREADS:-1}" --device "${DEVICE:-auto}"
    --eval-every "${EVAL_EVERY:-250}" --checkpoint-every "${CKPT_EVERY:-250}")
[[ -n "${WORKERS:-}" ]] && COMMON+=(--workers "$WORKERS")
ENCODER=(--pool-features "${POOL_FEATURES:-1024}" --pool-norm batch --patch mean)
FINAL=(--lr "${LR:-1e-3}" --warmup "${WARMUP:-100}" --steps "${STEPS:-1500}")
LOCUS=(--head-from "${HEAD_FROM:-$OUT/model}" --freeze-kmer-head --encoder-dims-from 128 --queue-size "${QUEUE:-4096}"
    --pool-norm layer --pool-features "${POOL_FEATURES:-1024}" --feature-variance "${FEATURE_VARIANCE:-1}"
    --lr "${LR21:-1e-3}" --warmup "${WARMUP:-100}"
    --steps "${STEPS21:-4000}")

run() {  # run DIR OPTIONS...: train into DIR, resuming when it already holds checkpoints; skip a finished run
    local dir=$1; shift
    if [[ -f "$dir/model.safetensors" ]]; then echo "train_default.sh: $dir is done" >&2; return; fi
    local resume=()
    compgen -G "$dir/checkpoints/step-*.pt" >/dev/null && resume=(--resume)
    echo "train_default.sh: -> $dir" >&2
    "${LAUNCH[@]}" train "${COMMON[@]}" -o "$dir" "$@" "${resume[@]}"
}

stage1() {  # $1 = output dir, then extra options
    local dir=$1; shift
    run "$dir" --kmer-only --lr "${STAGE1_LR:-2e-3}" --warmup 50 --steps "${STAGE1_STEPS:-1000}" "$@" \
        --name mrl-dna-v2-stage1
}

for what in "${WHAT[@]}"; do
    case $what in
        stage1) stage1 "$OUT/stage1" ;;
        model) run "$OUT/model" --head-from "$OUT/stage1" --kmer-only "${FINAL[@]}" --name mrl-dna-default ;;
        twin)
            stage1 "$OUT/twin-stage1" --no-matryoshka
            run "$OUT/twin" --head-from "$OUT/twin-stage1" --kmer-only "${FINAL[@]}" --no-matryoshka \
                --name mrl-dna-default-no-matryoshka ;;
        encoder) run "$OUT/encoder" --head-from "$OUT/stage1" "${ENCODER[@]}" "${FINAL[@]}" --name mrl-dna-v2-encoder ;;
        encoder-frozen) run "$OUT/encoder-frozen" --head-from "$OUT/stage1" "${ENCODER[@]}" --freeze-kmer-head "${FINAL[@]}" \
            --name mrl-dna-v2-encoder-frozen ;;
        locus-mlp) run "$OUT/locus-mlp" "${LOCUS[@]}" --backbone kmer-mlp --name mrl-dna-locus-mlp ;;
        locus-encoder) run "$OUT/locus-encoder" "${LOCUS[@]}" --patch mean --cpu-bf16 --name mrl-dna-locus-encoder ;;
        *) die "unknown step '$what'; give any of: stage1 model twin encoder encoder-frozen locus-mlp locus-encoder" ;;
    esac
done
echo "train_default.sh: done. To ship: cp $OUT/model/{config.json,model.safetensors} mrl_dna/default_model/ and" \
    "cp $OUT/twin/{config.json,model.safetensors} bench/models/no-matryoshka/ (then the cards and README)" >&2
