{% extends "_base.sh" %}
{#- Distributed data-parallel training. One node: the stage starts its {{ procs_per_node }} process(es)
    itself (--nproc: a file rendezvous, collectives on loopback, no TCP store). Several nodes:
    srun starts one torchrun per node; torchrun starts {{ procs_per_node }} process(es) per node
    and they meet at the first node (c10d rendezvous). -#}
{% block run %}
# DDP: {{ nodes }} node(s) x {{ procs_per_node }} process(es){% if gpus_per_node %}, one per GPU{% endif %}.
{% if nodes == 1 and procs_per_node == 1 -%}
srun --ntasks=1 {{ command }} &
{%- elif nodes == 1 -%}
srun --ntasks=1 {{ command }} --nproc {{ procs_per_node }} &
{%- else -%}
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun --ntasks-per-node=1 torchrun --nnodes={{ nodes }} --nproc_per_node={{ procs_per_node }} \
    --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$head:{{ rdzv_port }}" \
    --no-python {{ command }} &
{%- endif %}
{% endblock %}
