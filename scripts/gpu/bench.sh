#!/bin/bash
# The GPU check of issue 16 in one go (~6-8 minutes on one H100/H200; see scripts/gpu/bench.py and
# bench/RESULTS.md). Run from the repository root of a checkout on the GPU machine:
#     bash scripts/gpu/bench.sh OUT_DIR            # OUT_DIR defaults to $OUT (the device tool's folder) or ./bench-gpu-out
# Extra arguments go to scripts/gpu/bench.py (e.g. --no-compile, --bp 2e8). No install needed: the checkout is put
# on PYTHONPATH; torch, numpy, h5py, typer, rich and safetensors must be importable.
set -euo pipefail
out=${1:-${OUT:-bench-gpu-out}}
shift || true
mkdir -p "$out"
{ nvidia-smi || true; nproc; free -g; python -c "import torch; print(torch.__version__, torch.version.cuda)"; } > "$out/machine.txt" 2>&1
PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" python scripts/gpu/bench.py --out "$out" "$@" 2>&1 | tee "$out/log.txt"
