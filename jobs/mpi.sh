{% extends "_base.sh" %}
{#- MPI task farm (quench, inherent, propensity): one job of {{ ntasks }} ranks; rank 0 hands
    out tasks and works too, so every rank computes. -#}
{% block run %}
{% if array %}# One element of a job array of {{ array }}: part ${SLURM_ARRAY_TASK_ID} of the {{ tasks_pending }} pending task(s),
# {{ ntasks }} rank(s) on {{ nodes }} node(s); the parts prepare the stage one at a time (a lock on DIR/.lock).
{{ mpi_launch }} {{ command }} --chunk "${SLURM_ARRAY_TASK_ID}/{{ array }}" &
{% else %}# MPI task farm: {{ ntasks }} rank(s) on {{ nodes }} node(s), {{ tasks_pending }} task(s) pending.
{{ mpi_launch }} {{ command }} &
{% endif %}{% endblock %}
