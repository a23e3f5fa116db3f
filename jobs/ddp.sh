{% extends "_base.sh" %}
{#- Distributed data-parallel training. One node: the stage starts its {{ procs_per_node }} process(es)
    itself (--nproc: a file rendezvous, collectives on loopback, no TCP store). Several nodes:
    srun starts {{ procs_per_node }} process(es) per node, which meet through a file rendezvous
    on the shared filesystem, named by a per-job secret (hpc/ddp.py); no TCP store,
    the collectives on the profile's cluster.interface. -#}
{% block run %}
# DDP: {{ nodes }} node(s) x {{ procs_per_node }} process(es){% if gpus_per_node %}, one per GPU{% endif %}.
{% if nodes == 1 and procs_per_node == 1 -%}
srun --ntasks=1 {{ command }} &
{%- elif nodes == 1 -%}
srun --ntasks=1 {{ command }} --nproc {{ procs_per_node }} &
{%- else -%}
# the rendezvous: a file only this job's processes know the name of (a 128-bit secret), in a
# directory of mode 700 on the shared filesystem; the file itself is made mode 600
secrets={{ secrets | q }}
mkdir -p "$secrets" && chmod 700 "$secrets"
export {{ init_env }}="file://$secrets/ddp-$SLURM_JOB_ID-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
umask 077
srun --ntasks-per-node={{ procs_per_node }} {{ command }} &
{%- endif %}
{% endblock %}
