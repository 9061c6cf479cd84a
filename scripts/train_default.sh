#!/usr/bin/env bash
# Train the bundled default model with `mrl-dna train` on the shared genomes, holding out whole species.
#
# usage: scripts/train_default.sh [DATA_DIR] [OUT_DIR] [extra `mrl-dna train` options...]
#   DATA_DIR  the shared data (with MANIFEST.tsv), e.g. copied onto a GPU box   [default ../shared/data]
#   OUT_DIR   the model directory to write                                      [default runs/default]
#   extra options go to `mrl-dna train` last, so they override the defaults below, e.g.
#     scripts/train_default.sh ../shared/data runs/nomrl --no-matryoshka       (the baseline twin)
#     scripts/train_default.sh ../shared/data runs/default --resume            (continue after a stop)
# Sizes and schedule come from the environment (defaults in brackets):
#   STEPS [3000] BATCH [64] ACCUM [1] LR [1e-3] WARMUP [150] D_MODEL [64] N_LAYER [2] STRIDE [16]
#   WINDOW [2048] DIMS [8,16,32,64,128] MIXER [ssd] POOLING [attention] COSENT [0.25] SEED [0]
#   DEVICE [auto] NPROC [1: > 1 runs torchrun --standalone with that many processes/GPUs]
#   EVAL_EVERY [250] CKPT_EVERY [250]
#
# Hold-out: the species below are never trained on; they are --val-genomes (fragment -> genome top-1 per
# Matryoshka dim during training) and they are the default species of scripts/bench_retrieval.py, which
# must benchmark on exactly the species the model did not see. Each has >= 2 genomes (species top-1 and
# genome top-1 differ) and two are Corynebacterium sister species (genus-level confusion is possible):
#   Caulobacter crescentus (2 genomes), Corynebacterium glutamicum (2), Corynebacterium pseudotuberculosis (1),
#   Methanobacterium (2, archaea), Shewanella baltica (2, first 500 kb each)
# Everything else in MANIFEST.tsv trains (E. coli, Salmonella, Blochmannia, Pectobacterium, Aquifex,
# Sphingobacteriaceae, the TARA MAG, phages, viruses, mitochondria, plasmids, Akkermansia); MANIFEST's
# `group` column is passed as --groups, so genomes of one species are not each other's negatives.
set -euo pipefail

DATA=${1:-../shared/data}
OUT=${2:-runs/default}
shift $(( $# < 2 ? $# : 2 ))

HELDOUT="Caulobacter crescentus;Corynebacterium glutamicum;Corynebacterium pseudotuberculosis;Methanobacterium;Shewanella baltica"

[[ -f "$DATA/MANIFEST.tsv" ]] || { echo "train_default.sh: $DATA/MANIFEST.tsv not found; give the data directory as \$1" >&2; exit 1; }

# split MANIFEST rows into training and held-out files (paths relative to DATA)
split() {  # $1 = train|heldout
    python3 - "$DATA/MANIFEST.tsv" "$HELDOUT" "$1" <<'PY'
import csv, sys
manifest, heldout, which = sys.argv[1], set(sys.argv[2].split(";")), sys.argv[3]
with open(manifest, newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
missing = heldout - {r["group"] for r in rows}
if missing:
    sys.exit(f"train_default.sh: held-out species {sorted(missing)} not in {manifest}")
for r in rows:
    if (r["group"] in heldout) == (which == "heldout"):
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

"${LAUNCH[@]}" train "${TRAIN[@]}" -o "$OUT" \
    --groups "$DATA/MANIFEST.tsv" "${VAL_ARGS[@]}" \
    --name mrl-dna-default \
    --d-model "${D_MODEL:-64}" --n-layer "${N_LAYER:-2}" --stride "${STRIDE:-16}" --mixer "${MIXER:-ssd}" \
    --pooling "${POOLING:-attention}" --window "${WINDOW:-2048}" --dims "${DIMS:-8,16,32,64,128}" \
    --steps "${STEPS:-3000}" --batch-size "${BATCH:-64}" --grad-accum "${ACCUM:-1}" --lr "${LR:-1e-3}" \
    --warmup "${WARMUP:-150}" --cosent-weight "${COSENT:-0.25}" --seed "${SEED:-0}" --device "${DEVICE:-auto}" \
    --eval-every "${EVAL_EVERY:-250}" --checkpoint-every "${CKPT_EVERY:-250}" \
    "$@"

echo "train_default.sh: done. To ship it: cp $OUT/{config.json,model.safetensors,README.md} mrl_dna/default_model/" >&2
