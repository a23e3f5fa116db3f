{% extends "_base.sh" %}
{#- Dask stage (dataset, indicators, analyze, report): this small job runs the stage's driver;
    its dask_client() starts a dask-jobqueue SLURMCluster of the profile's [dask] worker jobs. -#}
{% block run %}
# Dask driver: workers are {{ profile.dask.jobs }} SLURM job(s) of {{ profile.dask.cores }} core(s), {{ profile.dask.memory }}.
{{ command }} &
{% endblock %}
