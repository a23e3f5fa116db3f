#!/bin/bash
# {{ job_name }}: stage '{{ stage }}' of campaign {{ campaign }}
# Rendered by `{{ program }} submit` from {{ template }} with profile '{{ profile.name }}'.
#SBATCH --job-name={{ job_name }}
#SBATCH --partition={{ profile.slurm.partition }}
{% if profile.slurm.account %}#SBATCH --account={{ profile.slurm.account }}
{% endif %}{% if profile.slurm.qos %}#SBATCH --qos={{ profile.slurm.qos }}
{% endif %}#SBATCH --time={{ shape.walltime }}
#SBATCH --nodes={{ nodes }}
#SBATCH --ntasks={{ ntasks }}
{% if ntasks_per_node %}#SBATCH --ntasks-per-node={{ ntasks_per_node }}
{% endif %}#SBATCH --cpus-per-task={{ cpus_per_task }}
{% if memory %}#SBATCH --mem={{ memory }}
{% endif %}{% if gpus_per_node %}#SBATCH --gpus-per-node={{ gpus_per_node }}
{% endif %}#SBATCH --signal=B:TERM@{{ profile.slurm.signal_seconds }}
#SBATCH --requeue
#SBATCH --open-mode=append
{% if array %}#SBATCH --array=0-{{ array - 1 }}{% if array_limit %}%{{ array_limit }}{% endif %}
#SBATCH --output={{ log_dir }}/%x-%A_%a.out
{% else %}#SBATCH --output={{ log_dir }}/%x-%j.out
{% endif %}{% for line in profile.slurm.extra_directives %}#SBATCH {{ line }}
{% endfor %}
{% for line in profile.environment.setup %}{{ line }}
{% endfor %}cd {{ campaign | q }}
echo "job $SLURM_JOB_ID ({{ stage }}{% if array %}, part ${SLURM_ARRAY_TASK_ID} of {{ array }} of array $SLURM_ARRAY_JOB_ID{% endif %}) on $SLURM_JOB_NODELIST, restart ${SLURM_RESTART_COUNT:-0}, $(date -Is)"
{% for key, value in env.items() %}export {{ key }}={{ value | q }}
{% endfor %}
# Walltime safety: SLURM sends SIGTERM to this script {{ profile.slurm.signal_seconds }} s before the time limit
# (--signal=B:TERM@...). The step runs in the background so that the trap fires at once and
# passes SIGTERM on to every process of the step{% if srun_step %} (scancel --signal: srun itself would take a
# SIGTERM as "kill the step"){% else %} (a plain kill; mpiexec forwards it to every rank){% endif %}; the stage finishes or
# checkpoints its current tasks, marks them in the ledger and exits.
{% if profile.slurm.requeue_limit %}# The job then requeues itself (at most {{ profile.slurm.requeue_limit }} times) and continues from the ledger;
# jobs waiting on it (afterok) keep waiting.
{% endif %}# `{{ program }} submit` run again submits whatever is left.
walltime_hit=0
trap 'walltime_hit=1; echo "SIGTERM (walltime near, or scancel): asking {{ stage }} to checkpoint"
{% if srun_step %}      scancel --signal=TERM "$SLURM_JOB_ID"' TERM{% else %}      kill -TERM "${step:-}" 2>/dev/null' TERM{% endif %}
{% block run %}{% endblock %}
step=$!
wait "$step"
status=$?
while kill -0 "$step" 2>/dev/null; do wait "$step"; status=$?; done
echo "{{ stage }} exited with status $status at $(date -Is)"
{% if profile.slurm.requeue_limit %}if [[ $walltime_hit == 1 && $status != 0 && ${SLURM_RESTART_COUNT:-0} -lt {{ profile.slurm.requeue_limit }} ]]; then
    echo "requeueing job $SLURM_JOB_ID to continue {{ stage }}"
    scontrol requeue "$SLURM_JOB_ID"
fi
{% endif %}exit "$status"
