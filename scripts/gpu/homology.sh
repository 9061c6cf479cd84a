#!/bin/bash
# The GPU check of issue 20 (item 4) in one go (~3-6 minutes on one H100/H200; see scripts/gpu/homology.py):
# window-level best hits, `search --level windows` and `dist --level windows` on the CPU and on the GPU, time
# per query/pair and agreement. Run from the repository root of a checkout on the GPU machine:
#     bash scripts/gpu/homology.sh OUT_DIR        # OUT_DIR defaults to $OUT (the device tool's folder) or ./homology-gpu-out
# Extra arguments go to scripts/gpu/homology.py (e.g. --genome-bp 5e6 --families 10). No install needed: the
# checkout is put on PYTHONPATH; torch, numpy, h5py, typer, rich and safetensors must be importable.
set -euo pipefail
out=${1:-${OUT:-homology-gpu-out}}
shift || true
mkdir -p "$out"
{ nvidia-smi || true; nproc; free -g; python -c "import torch; print(torch.__version__, torch.version.cuda)"; } > "$out/machine.txt" 2>&1
PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" python scripts/gpu/homology.py --out "$out" "$@" 2>&1 | tee "$out/log.txt"
