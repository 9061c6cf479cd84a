#!/usr/bin/env bash
# Embed many genomes on a SLURM cluster: an array job of N shards + a merge job that waits for all of them.
# An example to copy and adapt (partition, account, GPUs, modules); it is not run by the test suite.
#
# usage, on the login node:
#   scripts/hpc/slurm_embed_array.sh N OUT.h5 FASTA... [-- extra `mrl-dna embed` options]
# e.g.
#   scripts/hpc/slurm_embed_array.sh 100 genomes.h5 genomes/*.fa.gz -- --model ./my_model --dtype float16
#
# What it submits:
#   1. an array job of N tasks: task I (SLURM_ARRAY_TASK_ID = 1..N) runs
#        mrl-dna embed FASTA... -o OUT.shards/shard-I-of-N.h5 --shard I/N
#      `--shard I/N` is a deterministic split of the records, contiguous and balanced by bases, so every task
#      gets about the same work and the N shard files hold every record exactly once.
#   2. a merge job with --dependency=afterok on the whole array: it starts only when all N tasks succeeded,
#        mrl-dna merge OUT.shards/shard-*-of-N.h5 -o OUT.h5
#      which checks that the shards agree (model, window, dims, ...) and that none is missing, and writes the
#      file one unsharded run would write (same rows, same order, bitwise-equal vectors). The shard files are
#      deleted after a successful merge (KEEP_SHARDS=1 keeps them).
#
# Failures and time limits: each task writes its shard as shard-I-of-N.h5.partial and renames it only when
# complete. A task that is killed, preempted or hits --time leaves the .partial; rerunning the same task
# continues from its last flushed record (`#SBATCH --requeue` does this for preemption; for a failed task:
#   sbatch --array=I scripts/hpc/slurm_embed_array.sh __task N OUT.h5 FASTA... [-- options]
# then submit the merge again:  sbatch --dependency=afterok:JOBID scripts/hpc/slurm_embed_array.sh __merge N OUT.h5).
# The merge refuses an incomplete set of shards with a line naming the missing ones, so it never writes a
# file that looks complete but is not.
#
# Exit codes of mrl-dna (what `sacct` shows): 0 ok, 1 user error (bad input, model or file: one line in the
# task's .err log says which and how to fix it), 2 usage error, 3 internal error (a bug), 130 interrupted.
#
# Environment knobs (defaults in brackets): MAX_PARALLEL [all N at once: --array=1-N%MAX_PARALLEL limits
# how many tasks run together], KEEP_SHARDS [0], MRL_DNA [mrl-dna: the command, e.g. "python -m mrl_dna"].
#
# Resources of ONE array task (edit for your cluster). One GPU per task; on a CPU-only partition drop
# --gres and give more --cpus-per-task (mrl-dna uses all the cores it is given; see --threads).
#SBATCH --job-name=mrl-embed
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=08:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=logs/%x-%A_%a.out
#SBATCH --error=logs/%x-%A_%a.err
##SBATCH --partition=gpu
##SBATCH --account=myproject

set -euo pipefail

MRL_DNA=${MRL_DNA:-mrl-dna}

# ---------------------------------------------------------------------------------------------- helpers
usage() {
    sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# split "FASTA... [-- options]" into the arrays INPUTS and OPTS
split_args() {
    INPUTS=()
    OPTS=()
    local seen=0
    for a in "$@"; do
        if [[ $seen == 0 && $a == "--" ]]; then seen=1; continue; fi
        if [[ $seen == 0 ]]; then INPUTS+=("$a"); else OPTS+=("$a"); fi
    done
}

shard_dir() { echo "${1%.h5}.shards"; }  # OUT.h5 -> OUT.shards/

# ---------------------------------------------------------------------------------------------- modes
mode=${1:-}
case "$mode" in
__task)  # one array task: embed shard SLURM_ARRAY_TASK_ID of N
    shift
    N=$1 OUT=$2
    shift 2
    split_args "$@"
    I=${SLURM_ARRAY_TASK_ID:?"__task runs inside a SLURM array job (sbatch --array=1-N)"}
    DIR=$(shard_dir "$OUT")
    mkdir -p "$DIR"
    # Warnings and the one-line run footer go to the task's .err log (add --quiet to the options to drop the
    # progress talk). Rerunning the same command resumes DIR/shard-I-of-N.h5.partial.
    exec $MRL_DNA embed "${INPUTS[@]}" -o "$DIR/shard-$I-of-$N.h5" --shard "$((SLURM_ARRAY_TASK_ID))/$N" "${OPTS[@]}"
    ;;
__merge)  # after every task succeeded: merge the N shards into OUT.h5
    shift
    N=$1 OUT=$2
    DIR=$(shard_dir "$OUT")
    shards=()
    for ((i = 1; i <= N; i++)); do shards+=("$DIR/shard-$i-of-$N.h5"); done
    $MRL_DNA merge "${shards[@]}" -o "$OUT"
    if [[ ${KEEP_SHARDS:-0} == 0 ]]; then
        rm -f "${shards[@]}" && rmdir "$DIR" 2>/dev/null || true
    fi
    $MRL_DNA info "$OUT"
    ;;
*)  # on the login node: submit the array and the dependent merge
    [[ $# -ge 3 ]] || usage
    N=$1 OUT=$2
    shift 2
    [[ $N =~ ^[1-9][0-9]*$ ]] || { echo "slurm_embed_array.sh: N must be a whole number >= 1, not '$N'" >&2; exit 2; }
    split_args "$@"
    [[ ${#INPUTS[@]} -gt 0 ]] || usage
    for f in "${INPUTS[@]}"; do
        # the shards read the inputs twice (a length pass balances the split): stdin cannot be sharded
        [[ $f != "-" && -r $f ]] || { echo "slurm_embed_array.sh: cannot read input '$f'" >&2; exit 1; }
    done
    [[ -e $OUT ]] && { echo "slurm_embed_array.sh: $OUT exists; move it away first (or pass --force in the options)" >&2; exit 1; }
    mkdir -p logs
    ARRAY="1-$N${MAX_PARALLEL:+%$MAX_PARALLEL}"
    # --parsable prints the job id; sbatch passes everything after the script name to the script
    jid=$(sbatch --parsable --array="$ARRAY" "$0" __task "$N" "$OUT" "$@")
    jid=${jid%%;*}  # "JOBID;CLUSTER" on federated clusters
    # The merge is light (one pass over the shard files): no GPU, 1 core, afterok = only if all tasks succeeded.
    mid=$(sbatch --parsable --job-name=mrl-merge --dependency=afterok:"$jid" --gres=none --cpus-per-task=1 \
        --mem=8G --time=02:00:00 --output=logs/%x-%j.out --error=logs/%x-%j.err "$0" __merge "$N" "$OUT")
    echo "submitted embed array $jid (tasks $ARRAY) and merge $mid -> $OUT" >&2
    echo "watch: squeue -j $jid,$mid    logs: logs/mrl-embed-${jid}_*.err" >&2
    ;;
esac
