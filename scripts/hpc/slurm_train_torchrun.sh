#!/usr/bin/env bash
# Train an mrl-dna model on one multi-GPU SLURM node with torchrun (one process per GPU, DDP over nccl).
# An example to copy and adapt (partition, account, GPU count, modules); it is not run by the test suite.
#
# usage:
#   sbatch scripts/hpc/slurm_train_torchrun.sh OUT_DIR GENOMES... [extra `mrl-dna train` options]
# e.g.
#   sbatch scripts/hpc/slurm_train_torchrun.sh runs/big genomes/ --groups genomes/MANIFEST.tsv \
#       --val-genomes heldout/ --steps 20000 --batch-size 64 --dims 8,16,32,64,128,256
#
# What happens: torchrun starts one `mrl-dna train` process per GPU of this node (WORLD_SIZE = GPUs,
# rank r on cuda:LOCAL_RANK). Every rank samples its own batches (seed + rank) and gradients are averaged
# by DDP; in-batch negatives stay per rank, so the effective batch is GPUs x --batch-size x --grad-accum.
# Rank 0 alone writes metrics.jsonl, checkpoints/ and the final model (config.json, model.safetensors,
# README.md), which `mrl-dna embed --model OUT_DIR` then loads.
#
# Time limits and preemption: the run checkpoints every --checkpoint-every steps. When OUT_DIR/checkpoints
# holds one, this script adds --resume (train refuses --resume without a checkpoint, and refuses to start
# over in a directory that has one), so a requeued job (#SBATCH --requeue) or the same sbatch line submitted
# again continues exactly where the last one stopped. Resuming on another number of GPUs works but its batches differ from the
# original run (train says so in a warning).
#
# Exit codes (what `sacct` shows for the job): 0 ok, 1 user error (one line in the .err log names it and
# the fix), 2 usage error, 3 internal error (a bug); torchrun itself exits 1 when any rank failed and prints
# a summary of the failed ranks after their own messages.
#
# Resources: one node, all of its GPUs for one task (torchrun makes the processes, not srun).
#SBATCH --job-name=mrl-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --mem=128G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.err
##SBATCH --partition=gpu
##SBATCH --account=myproject

set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '5,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
OUT=$1
shift

# GPUs on this node: SLURM's view when there is one, else what CUDA sees (e.g. run by hand on a GPU box).
if [[ -n ${SLURM_GPUS_ON_NODE:-} ]]; then
    NGPU=$SLURM_GPUS_ON_NODE
elif command -v nvidia-smi >/dev/null 2>&1; then
    NGPU=$(nvidia-smi --list-gpus | wc -l)
else
    NGPU=${NPROC:-1}  # no GPU: NPROC CPU processes (gloo), e.g. to try the script on a laptop
fi
[[ $NGPU -ge 1 ]] || { echo "slurm_train_torchrun.sh: no GPU visible and NPROC unset" >&2; exit 1; }

# Sampler processes and torch threads: share this job's cores among the ranks (train's default does the
# same). Set here because torchrun otherwise sets OMP_NUM_THREADS=1 for every rank.
CPUS=${SLURM_CPUS_PER_TASK:-$(nproc)}
export OMP_NUM_THREADS=$(( CPUS / NGPU > 0 ? CPUS / NGPU : 1 ))

# nccl: say what went wrong when a rank hangs or fails (cheap; drop once the setup works).
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1

mkdir -p logs
echo "slurm_train_torchrun.sh: $NGPU process(es) on $(hostname), $OMP_NUM_THREADS thread(s) each -> $OUT" >&2

RESUME=()
if compgen -G "$OUT/checkpoints/step-*.pt" >/dev/null; then
    RESUME=(--resume)
    echo "slurm_train_torchrun.sh: continuing from the last checkpoint in $OUT/checkpoints" >&2
fi

# --standalone: a single-node rendezvous on a free local port (no MASTER_ADDR/PORT to pick).
# python -m torch.distributed.run is torchrun, without assuming it is on PATH.
python -m torch.distributed.run --standalone --nproc_per_node "$NGPU" \
    -m mrl_dna train "$@" -o "$OUT" "${RESUME[@]}"

echo "slurm_train_torchrun.sh: done. Embed with: mrl-dna embed GENOMES... --model $OUT -o OUT.h5" >&2
echo "  (several GPUs: torchrun --standalone --nproc_per_node $NGPU -m mrl_dna embed GENOMES... --model $OUT -o OUT.h5)" >&2
