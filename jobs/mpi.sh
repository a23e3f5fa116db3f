{% extends "_base.sh" %}
{#- MPI task farm (quench, inherent, propensity): one job of {{ ntasks }} ranks; rank 0 hands
    out tasks and works too, so every rank computes. -#}
{% block run %}
# MPI task farm: {{ ntasks }} rank(s) on {{ nodes }} node(s), {{ tasks_pending }} task(s) pending.
{{ mpi_launch }} {{ command }} &
{% endblock %}
