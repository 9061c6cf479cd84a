#!/usr/bin/env bash
# Issue 11's encoder experiment in one call on a lent GPU, on a corpus subset small enough to travel with the
# checkout (the device tool sends the working tree and carried paths, 64 MiB in all; the whole corpus is 550 MB).
#
# 1. Here, once (CPU, ~1 min):
#      scripts/gpu/train_encoder.sh pack data/corpus/v2 gpu-corpus [MIB]
#    gpu-corpus/train.fa.gz = whole training genomes of the corpus, in its order, until MIB of gzip [40]
#    (~1,400 of the 6,627 genomes); gpu-corpus/val/ = the 40 validation genomes train_default.sh validates on.
#    gpu-corpus/ is added to .git/info/exclude, so it travels only when carried.
# 2. On the GPU (device tool: carry ["gpu-corpus"], timeout_s 600):
#      STEPS=1500 bash scripts/gpu/train_encoder.sh train gpu-corpus "$OUT"
#    trains, with v2.1's recipes on cuda (recipes/v2.1: stage1.toml, model.toml, encoder-frozen.toml, through
#    scripts/train/train_default.sh), stage1 and model (the k-mer-only ablation) and encoder-frozen (the Caduceus-style
#    encoder on top of stage 1's head, k-mer columns frozen), on the subset; $OUT/model/ and $OUT/encoder-frozen/ get config.json + model.safetensors,
#    $OUT/log.txt the log (7 files: the device tool returns at most 8).
# 3. Back here: the three held-out benchmarks, each with --model ablation=OUT/model --model encoder=OUT/encoder-frozen
#    (scripts/bench/cluster.py, scripts/bench/retrieval.py --set all, scripts/bench/windows.py): the encoder earns its cost only if
#    it beats the ablation there (issue 11: +5 ARI, +10 locus top-1 at 20-30%).
# Environment: STAGE1_STEPS [1000] STEPS [1500] EVAL_EVERY [500] CKPT_EVERY [500] WORKERS [8] THREADS [1]
# DEVICE [cuda] (passed to train_default.sh as overrides of the recipes).
# Timing is a guess (no GPU has run it): on the 2-core CPU an encoder step at 768 windows takes ~60 s, a k-mer
# step 0.27 s (mostly sampling, which WORKERS spreads). If the first call nears the 600 s limit, halve STEPS.
set -euo pipefail
die() { echo "scripts/gpu/train_encoder.sh: $*" >&2; exit 1; }
verb=${1:-}

case $verb in
pack)
    corpus=${2:?usage: scripts/gpu/train_encoder.sh pack CORPUS_DIR DEST [MIB]}; dest=${3:?DEST}; mib=${4:-40}
    [[ -f "$corpus/train.fa" && -d "$corpus/val" ]] || die "$corpus holds no corpus (train.fa, val/); build it with scripts/data/get_training_data.sh"
    [[ -e "$dest" ]] && die "$dest exists; remove it or pick another DEST"
    mkdir -p "$dest/val"
    python3 - "$corpus/train.fa" "$dest/train.fa.gz" "$mib" <<'EOF'
import gzip, sys
src, dst, mib = sys.argv[1], sys.argv[2], float(sys.argv[3])
limit = int(mib * 2**20)
raw = open(dst, "wb")
out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)  # mtime 0: the same bytes every time
n = 0
record: list[bytes] = []
def flush() -> bool:
    global n
    if not record:
        return True
    out.write(b"".join(record))
    out.flush()  # a sync point, so raw.tell() is the compressed size so far
    n += 1
    return raw.tell() < limit
with open(src, "rb") as f:
    for line in f:
        if line.startswith(b">"):
            if not flush():
                break
            record = []
        record.append(line)
    else:
        flush()
out.close(); raw.close()
print(f"scripts/gpu/train_encoder.sh: {n} genomes -> {dst}", file=sys.stderr)
EOF
    ls "$corpus/val" | sort | head -n 40 | while read -r f; do gzip -n -c "$corpus/val/$f" > "$dest/val/$f.gz"; done
    if [[ $dest != /* ]] && git rev-parse --git-dir >/dev/null 2>&1; then
        grep -qxF "/$dest/" "$(git rev-parse --git-dir)/info/exclude" 2>/dev/null || echo "/$dest/" >> "$(git rev-parse --git-dir)/info/exclude"
    fi
    du -sh "$dest" >&2 ;;
train)
    sub=${2:?usage: scripts/gpu/train_encoder.sh train SUBSET_DIR OUT_DIR}; out=${3:?OUT_DIR}
    [[ -f "$sub/train.fa.gz" && -d "$sub/val" ]] || die "$sub is not a subset made by 'scripts/gpu/train_encoder.sh pack'"
    work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; mkdir -p "$work/corpus/val" "$out"
    gzip -dc "$sub/train.fa.gz" > "$work/corpus/train.fa"
    cp "$sub"/val/* "$work/corpus/val/"
    export DEVICE=${DEVICE:-cuda} WORKERS=${WORKERS:-8} THREADS=${THREADS:-1}
    every="--eval-every ${EVAL_EVERY:-500} --checkpoint-every ${CKPT_EVERY:-500}"
    { nvidia-smi -L || true; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$out/log.txt" 2>&1
    start=$SECONDS
    export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    OPTS="--steps ${STAGE1_STEPS:-1000} $every" bash scripts/train/train_default.sh "$work/corpus" "$work/runs" stage1 2>&1 \
        | tee -a "$out/log.txt"
    OPTS="--steps ${STEPS:-1500} $every" bash scripts/train/train_default.sh "$work/corpus" "$work/runs" model encoder-frozen \
        2>&1 | tee -a "$out/log.txt"
    echo "gpu_train_encoder.sh: trained in $((SECONDS - start)) s" | tee -a "$out/log.txt"
    for run in model encoder-frozen; do
        mkdir -p "$out/$run"; cp "$work/runs/$run/config.json" "$work/runs/$run/model.safetensors" "$out/$run/"
    done ;;
*) die "usage: scripts/gpu/train_encoder.sh pack CORPUS_DIR DEST [MIB] | train SUBSET_DIR OUT_DIR" ;;
esac
