#!/bin/bash
# gd-analyze-ka3d: stage 'analyze' of campaign /path/to/campaigns/ka3d
# Rendered by `glassdist submit` from dask.sh with profile 'generic-cpu'.
#SBATCH --job-name=gd-analyze-ka3d
#SBATCH --partition=compute
#SBATCH --account=myproject
#SBATCH --time=04:00:00
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --signal=B:TERM@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=/path/to/campaigns/ka3d/slurm/logs/%x-%j.out

module load openmpi/4.1
source $HOME/venvs/glassdist/bin/activate
cd /path/to/campaigns/ka3d
echo "job $SLURM_JOB_ID (analyze) on $SLURM_JOB_NODELIST, restart ${SLURM_RESTART_COUNT:-0}, $(date -Is)"
export HPC_DASK_PROFILE=/path/to/glassdist/hpc/profiles/generic-cpu.toml
export HPC_DASK_LOG_DIR=/path/to/campaigns/ka3d/slurm/logs
export HPC_SECRETS_DIR=/path/to/campaigns/ka3d/slurm/secrets
export UCX_NET_DEVICES=ib0
export GLOO_SOCKET_IFNAME=ib0
export NCCL_SOCKET_IFNAME=ib0

# Walltime safety: SLURM sends SIGTERM to this script 300 s before the time limit
# (--signal=B:TERM@...). The step runs in the background so that the trap fires at once and
# passes SIGTERM on to every process of the step (a plain kill; mpiexec forwards it to every rank); the stage finishes or
# checkpoints its current tasks, marks them in the ledger and exits.
# The job then requeues itself (at most 5 times) and continues from the ledger;
# jobs waiting on it (afterok) keep waiting.
# `glassdist submit` run again submits whatever is left.
walltime_hit=0
trap 'walltime_hit=1; echo "SIGTERM (walltime near, or scancel): asking analyze to checkpoint"
      kill -TERM "${step:-}" 2>/dev/null' TERM

# Dask driver: workers are 4 SLURM job(s) of 32 core(s), 120GB.

glassdist analyze /path/to/campaigns/ka3d &

step=$!
wait "$step"
status=$?
while kill -0 "$step" 2>/dev/null; do wait "$step"; status=$?; done
echo "analyze exited with status $status at $(date -Is)"
if [[ $walltime_hit == 1 && $status != 0 && ${SLURM_RESTART_COUNT:-0} -lt 5 ]]; then
    echo "requeueing job $SLURM_JOB_ID to continue analyze"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"

