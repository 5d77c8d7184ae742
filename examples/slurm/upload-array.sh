#!/bin/bash
# Upload the files of a manifest to GHGA with a Slurm job array, one shard per task.
#
#   sbatch --array=1-8 examples/slurm/upload-array.sh files.tsv     (or --array=0-7)
#
# files.tsv: 'absolute path<TAB>alias' lines. Task ID i of N tasks runs
# `ghga-connector upload --shard K/N` with K = (i mod N) + 1: the K-th of N shares of
# the manifest, balanced by bytes and the same on every node. Any N consecutive task IDs
# (1-8 or 0-7) cover every shard once. If a task fails or is killed (time limit, node
# failure), run the same task again: `sbatch --array=i --export=ALL,SHARDS=N
# examples/slurm/upload-array.sh files.tsv` (keep the same N). It continues interrupted uploads and skips
# files already in the box. Downloads: the same with
# `ghga-connector download --output-dir DIR --decrypt --shard K/N`.
#
#SBATCH --job-name=ghga-upload
#SBATCH --cpus-per-task=4
#SBATCH --mem=2G
#SBATCH --time=24:00:00
#SBATCH --output=ghga-upload-%A_%a.log

set -euo pipefail

MANIFEST=${1:?usage: sbatch --array=1-N upload-array.sh files.tsv}
# N: the array size (SHARDS overrides it when a single task is re-submitted).
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:?run this with sbatch --array=1-N}}
# Shard K of N from the task ID, for arrays that start at 1 or at 0 alike.
SHARD=$(( SLURM_ARRAY_TASK_ID % SHARDS + 1 ))
GHGA_DIR=${GHGA_DIR:-$HOME/.ghga}

# Journals of unfinished uploads on storage every node sees, so that a re-run task
# continues where the killed one stopped, wherever it runs.
export GHGA_CONNECTOR_STATE_DIR=${GHGA_CONNECTOR_STATE_DIR:-$GHGA_DIR/state}
# Secrets come from files readable by you only (chmod 600), never from the command line.
if [[ -f $GHGA_DIR/passphrase ]]; then
    C4GH_PASSPHRASE=$(<"$GHGA_DIR/passphrase")
    export C4GH_PASSPHRASE
fi
# Behind the cluster's proxy: HTTPS_PROXY / NO_PROXY are honoured if set.

ghga-connector --json upload \
    --wpat-file "$GHGA_DIR/upload.wpat" \
    --my-public-key-path "$GHGA_DIR/key.pub" \
    --my-private-key-path "$GHGA_DIR/key.sec" \
    --manifest "$MANIFEST" \
    --shard "$SHARD/$SHARDS" \
    > "ghga-upload-$SLURM_ARRAY_TASK_ID.jsonl"
