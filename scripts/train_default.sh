#!/usr/bin/env bash
# Train the bundled default model with `mrl-dna train` on the shared genomes, holding out whole species.
#
# usage: scripts/train_default.sh [DATA_DIR] [OUT_DIR] [extra `mrl-dna train` options...]
#   DATA_DIR  the shared data (with MANIFEST.tsv), e.g. copied onto a GPU box   [default ../shared/data]
#   OUT_DIR   the model directory to write                                      [default runs/default]
#   extra options go to `mrl-dna train` last, so they override the defaults below, e.g.
#     scripts/train_default.sh ../shared/data runs/nomrl --no-matryoshka       (the baseline twin)
#     scripts/train_default.sh ../shared/data runs/default --resume            (continue after a stop)
# Two stages (the shipped model ran stage 1 on a lent H100 and stage 2 on a 2-core CPU):
#   1. the encoder: `mrl-dna train` from random init with a 2-layer MLP head, k-mer features scaled
#      "centered" (what the shipped encoder was trained with), 800 steps x 256 on a GPU -> OUT/encoder.
#      Skipped when ENCODER=DIR names a model whose encoder to keep (e.g. mrl_dna/default_model: its encoder
#      IS the stage-1 encoder, frozen in stage 2).
#   2. the head: `mrl-dna train --init ENCODER --head-init whiten --freeze-backbone`: the encoder is kept,
#      the head becomes one linear layer started at the whitened, PCA-ordered sqrt k-mer profile of the
#      training genomes (mrl_dna/train/whiten.py) and trained with the Matryoshka InfoNCE loss. Extra options
#      go to this stage, last, so they override (e.g. --no-matryoshka for the baseline twin).
# Sizes and schedule come from the environment (defaults in brackets; they are what the shipped model used):
#   stage 1: STEPS [800] BATCH [256] ACCUM [1] LR [5e-4] WARMUP [100] D_MODEL [64] N_LAYER [2] STRIDE [16]
#            WINDOW [2048] MIXER [ssd] POOLING [mean] COSENT [0] EVAL_EVERY [400] CKPT_EVERY [400] WORKERS [6]
#            NPROC [1: > 1 runs torchrun --standalone with that many processes/GPUs]
#   stage 2: HEAD_STEPS [300] HEAD_BATCH [128] HEAD_LR [1e-3] HEAD_WARMUP [30] SHRINKAGE [0.3]
#            WHITEN_WINDOWS [300]
#   both:    DIMS [8,16,32,64,128] SEED [0] DEVICE [auto]
#
# Hold-out: the genomes below are never trained on; they are --val-genomes (fragment -> genome top-1 per
# Matryoshka dim during training) and scripts/bench_retrieval.py must benchmark on exactly these species
# (its --species default). Whole species are held out, from different phyla, with two species that have
# two genomes each (so species top-1 and genome top-1 differ) and one sister of a training species:
#   Pectobacterium atrosepticum (Enterobacterales, like the training E. coli/Salmonella), Aquifex aeolicus,
#   Corynebacterium pseudotuberculosis (sister of the training C. glutamicum), Methanobacterium (2 genomes,
#   archaea), Shewanella baltica (2 strains, first 500 kb), Akkermansia muciniphila (first 500 kb), and two
#   Blochmannia species (floridanus, vafer) whose genus-mates train.
# Everything else in MANIFEST.tsv trains; scripts/default_groups.tsv names each file's species (MANIFEST's
# `group` column lumps Blochmannia by genus), so genomes of one species are not each other's negatives.
set -euo pipefail

DATA=${1:-../shared/data}
OUT=${2:-runs/default}
shift $(( $# < 2 ? $# : 2 ))

HELDOUT="Pectobacterium_atrosepticum_SCRI1043 Aquifex_aeolicus_VF5 Cpseudotb_CIP52.97 Methanobacterium_AL-21 Methanobacterium_MB1 Blochmannia_floridanus Blochmannia_vafer_BVAF Akkermansia_first500k Shew_baltica_OS185_first500k Shew_baltica_OS223_first500k"
GROUPS_TSV=$(dirname "$0")/default_groups.tsv

[[ -f "$DATA/MANIFEST.tsv" ]] || { echo "train_default.sh: $DATA/MANIFEST.tsv not found; give the data directory as \$1" >&2; exit 1; }

# split MANIFEST rows into training and held-out files (paths relative to DATA)
split() {  # $1 = train|heldout
    python3 - "$DATA/MANIFEST.tsv" "$HELDOUT" "$1" <<'PY'
import csv, sys
manifest, heldout, which = sys.argv[1], set(sys.argv[2].split()), sys.argv[3]
with open(manifest, newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
stem = lambda path: path.rsplit("/", 1)[-1].removesuffix(".gz").rsplit(".", 1)[0]
missing = heldout - {stem(r["file"]) for r in rows}
if missing:
    sys.exit(f"train_default.sh: held-out genomes {sorted(missing)} not in {manifest}")
for r in rows:
    if (stem(r["file"]) in heldout) == (which == "heldout"):
        print(r["file"])
PY
}
mapfile -t TRAIN < <(split train)
mapfile -t VAL < <(split heldout)
TRAIN=("${TRAIN[@]/#/$DATA/}")
VAL_ARGS=()
for f in "${VAL[@]}"; do VAL_ARGS+=(--val-genomes "$DATA/$f"); done
echo "train_default.sh: ${#TRAIN[@]} training files, ${#VAL[@]} held-out files ($HELDOUT) -> $OUT" >&2

if [[ "${NPROC:-1}" -gt 1 ]]; then
    LAUNCH=(python3 -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m mrl_dna)  # = torchrun
else
    LAUNCH=(python3 -m mrl_dna)
fi

ENCODER=${ENCODER:-}
if [[ -z "$ENCODER" ]]; then  # ---- stage 1: the encoder
    ENCODER=$OUT/encoder
    "${LAUNCH[@]}" train "${TRAIN[@]}" -o "$ENCODER" \
        --groups "$GROUPS_TSV" "${VAL_ARGS[@]}" \
        --name mrl-dna-default-encoder --kmer-transform centered --head-hidden 256 \
        --d-model "${D_MODEL:-64}" --n-layer "${N_LAYER:-2}" --stride "${STRIDE:-16}" --mixer "${MIXER:-ssd}" \
        --pooling "${POOLING:-mean}" --window "${WINDOW:-2048}" --dims "${DIMS:-8,16,32,64,128}" \
        --steps "${STEPS:-800}" --batch-size "${BATCH:-256}" --grad-accum "${ACCUM:-1}" --lr "${LR:-5e-4}" \
        --warmup "${WARMUP:-100}" --cosent-weight "${COSENT:-0}" --seed "${SEED:-0}" --device "${DEVICE:-auto}" \
        --eval-every "${EVAL_EVERY:-400}" --checkpoint-every "${CKPT_EVERY:-400}" --workers "${WORKERS:-6}"
    [[ -f "$ENCODER/model.safetensors" ]] || { echo "train_default.sh: stage 1 paused (no $ENCODER/model.safetensors yet); rerun to go on" >&2; exit 0; }
fi

# ---- stage 2: the head (one process: the encoder is frozen, so this is cheap enough for a CPU)
python3 -m mrl_dna train "${TRAIN[@]}" -o "$OUT" \
    --groups "$GROUPS_TSV" "${VAL_ARGS[@]}" \
    --name mrl-dna-default --init "$ENCODER" --head-init whiten --kmer-transform sqrt --freeze-backbone \
    --whiten-shrinkage "${SHRINKAGE:-0.3}" --whiten-windows "${WHITEN_WINDOWS:-300}" --dims "${DIMS:-8,16,32,64,128}" \
    --steps "${HEAD_STEPS:-300}" --batch-size "${HEAD_BATCH:-128}" --lr "${HEAD_LR:-1e-3}" \
    --warmup "${HEAD_WARMUP:-30}" --cosent-weight 0 --seed "${SEED:-0}" --device "${DEVICE:-auto}" \
    --eval-every 100 --checkpoint-every 100 \
    "$@"

echo "train_default.sh: done. To ship it: cp $OUT/{config.json,model.safetensors,README.md} mrl_dna/default_model/" >&2
