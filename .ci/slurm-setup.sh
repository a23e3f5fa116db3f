#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (root only; idempotent; no stdin).
#
#   bash .ci/slurm-setup.sh          install slurm-wlm + munge if missing, write
#                                    /etc/slurm/slurm.conf, start munged, slurmctld, slurmd,
#                                    wait until `sinfo` shows the node idle
#
# The node is named after `hostname -s` (or localhost), has CPUs = nproc and RealMemory from
# `free`, and is reached on 127.0.0.1 only: NoCtldInAddrAny and NoInAddrAny make
# slurmctld and slurmd bind the loopback address instead of every interface.
# cred_expire=20 lets a job that requeued itself start again after 20 s instead of 120 s.
# Used by .ci/run so that tests/test_slurm.py runs against a real SLURM.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "slurm-setup: must run as root (it installs packages and starts daemons)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-setup: installing slurm-wlm and munge"
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

NODE=$(hostname -s 2>/dev/null || true)
NODE=${NODE:-localhost}
CPUS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
MEM_MB=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
CONF=/etc/slurm/slurm.conf

# ---- munge ------------------------------------------------------------------------------
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key && chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "slurm-setup: starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# ---- slurm.conf ---------------------------------------------------------------------------
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
NEW=$(cat <<EOF
# Single-node SLURM on localhost, written by .ci/slurm-setup.sh (do not edit: rerun the script).
ClusterName=glassdist-local
SlurmctldHost=${NODE}(127.0.0.1)
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=20
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=3600
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=60
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${NODE} NodeAddr=127.0.0.1 NodeHostname=${NODE} CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
)
CHANGED=0
if [[ ! -f $CONF ]] || [[ "$(cat "$CONF")" != "$NEW" ]]; then
    printf '%s\n' "$NEW" > "$CONF"
    CHANGED=1
fi

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {  # stop the daemon whose pid file is $1, waiting for it to go
    if running "$1"; then
        local pid; pid=$(cat "$1")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
}
if [[ $CHANGED == 1 ]]; then
    stop /run/slurmd.pid
    stop /run/slurmctld.pid
fi
if ! running /run/slurmctld.pid; then
    echo "slurm-setup: starting slurmctld"
    slurmctld
fi
if ! running /run/slurmd.pid; then
    echo "slurm-setup: starting slurmd for node ${NODE} (${CPUS} CPUs, ${MEM_MB} MB)"
    slurmd -N "$NODE"
fi

# ---- wait for the node -------------------------------------------------------------------
for i in $(seq 120); do
    STATE=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1 || true)
    case "$STATE" in
        idle|mixed|allocated) echo "slurm-setup: node ${NODE} is ${STATE}"; sinfo; exit 0 ;;
        down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
done
echo "slurm-setup: node ${NODE} did not become idle (state '${STATE:-none}'); logs:" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
