{% extends "_base.sh" %}
{#- Dask stage (dataset, indicators, analyze, report): this job runs the stage's driver; its
    dask_client() starts a dask-jobqueue SLURMCluster of the profile's [dask] worker jobs, or
    with [dask] jobs = 0 a LocalCluster inside this job. -#}
{% block run %}
{% if profile.dask.jobs %}# Dask driver: workers are {{ profile.dask.jobs }} SLURM job(s) of {{ profile.dask.cores }} core(s), {{ profile.dask.memory }}.
{% else %}# Dask stage: {{ profile.dask.processes }} worker process(es) on this job's {{ cpus_per_task }} core(s).
{% endif %}
{{ command }} &
{% endblock %}
