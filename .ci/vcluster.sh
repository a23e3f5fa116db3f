#!/usr/bin/env bash
# A virtual multi-node SLURM cluster on this machine, for the multi-node tests (root only).
#
#   bash .ci/vcluster.sh up       build it (idempotent: restarts what is missing) and wait until
#                                 every compute node is idle
#   bash .ci/vcluster.sh down     stop every daemon, remove the namespaces, links and state
#   bash .ci/vcluster.sh status   print what runs (exit 0 when every node is idle, else 1)
#   bash .ci/vcluster.sh kill N   node loss: SIGKILL node N's PID 1 (every process of the node dies)
#   bash .ci/vcluster.sh env      the line to source: export SLURM_CONF=...
#
# Layout (docs/slurm.md, "A virtual multi-node cluster"): one head (slurmctld) and
# GD_VNODES (default 2) compute nodes (slurmd) of GD_VNODE_CPUS (default 3) CPUs each, each in
# its own network namespace: a veth pair
# into the bridge gdvbr0 (10.77.0.0/24; the host end of the bridge is 10.77.0.1, so this
# namespace is the "login node"), head 10.77.0.10, node i 10.77.0.(10+i), named gdv-head,
# gdv-n1, gdv-n2, ... A node is entered with nsenter into its network namespace and unshare
# into new mount, UTS, IPC and PID namespaces: its own hostname, /etc/hosts (bound over the
# real one), a fresh sysfs (its own network devices) with the cgroup tree bound back under it,
# its own /proc and /dev/shm. Without the PID and IPC namespaces MPICH's shared-memory and
# cross-memory-attach transports would pass the data between "nodes" without the network.
# The node's PID 1 is a shell that runs slurmd in the foreground; killing it kills the node.
# The nodes share the machine's cores; 3 CPUs each (on a 2-core machine) let a one-core Dask
# driver job and one 2-core Dask worker job share a node, so that two worker jobs always land
# on different nodes.
#
# Apart from the single-node SLURM of .ci/slurm-setup.sh: its own slurm.conf (clients need
# SLURM_CONF=/run/gd-vcluster/slurm.conf, otherwise they talk to the single-node SLURM), own
# ports (6917, 6918), spool, state and log paths under /run/gd-vcluster, and its own munged
# with its own key and socket (AuthInfo=socket=...). The filesystem is shared by every node,
# as a cluster's shared filesystem is.
set -euo pipefail

SELF=$(readlink -f "$0")
ROOT=/run/gd-vcluster
BRIDGE=gdvbr0
NET=10.77.0
NODES=${GD_VNODES:-2}
CTLD_PORT=6917
SLURMD_PORT=6918
CONF=$ROOT/slurm.conf
export SLURM_CONF=$CONF

die() { echo "vcluster: $*" >&2; exit 1; }
node_names() { for i in $(seq "$NODES"); do echo "gdv-n$i"; done; }
alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

require() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it creates network namespaces and starts daemons)"
    for cmd in ip nsenter unshare slurmctld slurmd munged; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found (slurm-wlm and munge: run .ci/slurm-setup.sh first)"
    done
}

# ---- munge: own daemon, key and socket -------------------------------------------------------
start_munge() {
    mkdir -p "$ROOT/munge"
    [[ -s $ROOT/munge/munge.key ]] || dd if=/dev/urandom of="$ROOT/munge/munge.key" bs=1024 count=1 status=none
    chown -R munge:munge "$ROOT/munge"
    chmod 755 "$ROOT/munge" && chmod 400 "$ROOT/munge/munge.key"  # the socket directory: 755
    if ! alive "$ROOT/munge/munged.pid"; then
        runuser -u munge -- /usr/sbin/munged --force --socket="$ROOT/munge/socket" \
            --key-file="$ROOT/munge/munge.key" --pid-file="$ROOT/munge/munged.pid" \
            --log-file="$ROOT/munge/munged.log" --seed-file="$ROOT/munge/munged.seed"
        for _ in $(seq 50); do munge -S "$ROOT/munge/socket" -n 2>/dev/null | unmunge -S "$ROOT/munge/socket" \
            >/dev/null 2>&1 && break; sleep 0.1; done
    fi
}

# ---- slurm.conf and hosts ------------------------------------------------------------------
write_config() {
    mkdir -p "$ROOT/state" "$ROOT/spool" "$ROOT/log" "$ROOT/run"
    local cpus mem nodes
    cpus=${GD_VNODE_CPUS:-3}
    mem=$(free -m | awk -v n="$NODES" '/^Mem:/ {print int($2 * 0.8 / n)}')
    nodes=$(node_names | paste -sd, -)
    {
        printf '127.0.0.1 localhost\n%s.1 gdv-login\n%s.10 gdv-head\n' "$NET" "$NET"
        for i in $(seq "$NODES"); do printf '%s.%d gdv-n%d\n' "$NET" $((10 + i)) "$i"; done
    } > "$ROOT/hosts"
    cat > "$CONF.new" <<EOF
# Virtual multi-node SLURM, written by .ci/vcluster.sh (do not edit: rerun the script).
ClusterName=gd-vcluster
SlurmctldHost=gdv-head($NET.10)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$ROOT/munge/socket,cred_expire=10
CredType=cred/munge
MpiDefault=none
# the nodes claim more CPUs than the machine has (GD_VNODE_CPUS): trust slurm.conf
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# 1: a node DOWN because it stopped answering returns when its slurmd registers again
ReturnToService=1
MinJobAge=3600
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=10
MessageTimeout=5
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool/%n
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd-%n.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd-%n.log
EOF
    for i in $(seq "$NODES"); do
        echo "NodeName=gdv-n$i NodeAddr=$NET.$((10 + i)) NodeHostname=gdv-n$i CPUs=$cpus RealMemory=$mem State=UNKNOWN" >> "$CONF.new"
    done
    echo "PartitionName=vc Nodes=$nodes Default=YES MaxTime=INFINITE State=UP" >> "$CONF.new"
    if [[ -f $CONF ]] && cmp -s "$CONF" "$CONF.new"; then rm "$CONF.new"; return 1; fi
    mv "$CONF.new" "$CONF"
}

# ---- network ---------------------------------------------------------------------------------
make_net() {  # make_net NAME ADDRESS: netns NAME with eth0 = ADDRESS/24 on the bridge
    local name=$1 addr=$2 host_end="gdv-${1#gdv-}"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$NET.1/24" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    [[ -e /run/netns/$name ]] || ip netns add "$name"
    if ! ip link show "$host_end" >/dev/null 2>&1; then
        ip link add "$host_end" type veth peer name eth0 netns "$name"
        ip link set "$host_end" master "$BRIDGE" up
        ip -n "$name" addr add "$addr/24" dev eth0
        ip -n "$name" link set eth0 up
        ip -n "$name" link set lo up
        ip -n "$name" route add default via "$NET.1"
    fi
}

# ---- a node: its namespaces, then one daemon in the foreground -------------------------------
start_node() {  # start_node NAME DAEMON ARGS...: run DAEMON as the node's service
    local name=$1; shift
    alive "$ROOT/run/$name.init" && return 0
    nsenter --net="/run/netns/$name" unshare --mount --uts --ipc --pid --fork --propagation private \
        bash "$SELF" _init "$name" "$@" >> "$ROOT/log/$name.console" 2>&1 &
    local outer=$! init=""
    for _ in $(seq 50); do init=$(pgrep -P "$outer" || true); [[ -n $init ]] && break; sleep 0.05; done
    [[ -n $init ]] || die "node $name did not start (see $ROOT/log/$name.console)"
    echo "$init" > "$ROOT/run/$name.init"
}

node_init() {  # inside the new namespaces (this shell is PID 1 of the node)
    local name=$1; shift
    hostname "$name"
    mount --bind "$ROOT/hosts" /etc/hosts
    mkdir -p "$ROOT/run/$name.cgroup"
    mount --rbind /sys/fs/cgroup "$ROOT/run/$name.cgroup"
    mount -t sysfs sysfs /sys                          # this namespace's network devices
    mount --rbind "$ROOT/run/$name.cgroup" /sys/fs/cgroup
    umount -l "$ROOT/run/$name.cgroup"
    mount -t proc proc /proc                           # this node's processes only
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm         # no shared memory across nodes
    "$@" &
    local daemon=$!
    trap 'kill -TERM $daemon 2>/dev/null' TERM
    wait "$daemon" || true
    while kill -0 "$daemon" 2>/dev/null; do wait "$daemon" || true; done
}

up() {
    require
    start_munge
    local changed=0
    write_config && changed=1
    [[ $changed == 1 ]] && stop_daemons
    make_net gdv-head "$NET.10"
    for i in $(seq "$NODES"); do make_net "gdv-n$i" "$NET.$((10 + i))"; done
    start_node gdv-head slurmctld -D -i -f "$CONF"
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
    for name in $(node_names); do
        mkdir -p "$ROOT/spool/$name"
        start_node "$name" slurmd -D -f "$CONF" -N "$name"
    done
    wait_idle
}

wait_idle() {
    local states=""
    for _ in $(seq 120); do
        states=$(sinfo -h -N -o '%N %T' 2>/dev/null | sort -u || true)
        if [[ -n $states ]] && ! grep -qv ' idle$\| mixed$\| allocated$' <<<"$states"; then
            echo "vcluster: up ($SLURM_CONF)"; sinfo -N; return 0
        fi
        sleep 0.5
    done
    echo "vcluster: nodes not idle: ${states:-no answer}; logs in $ROOT/log" >&2
    tail -n 20 "$ROOT"/log/*.log >&2 || true
    exit 1
}

stop_daemons() {  # end every node (its PID 1: the whole PID namespace goes with it)
    for f in "$ROOT"/run/*.init; do
        [[ -f $f ]] || continue
        local pid; pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
}

down() {
    require
    stop_daemons
    if alive "$ROOT/munge/munged.pid"; then kill "$(cat "$ROOT/munge/munged.pid")"; fi
    for ns in $(ip netns list | awk '/^gdv-/ {print $1}'); do ip netns delete "$ns"; done
    for link in $(ip -o link show | awk -F': ' '$2 ~ /^gdv-/ {sub(/@.*/, "", $2); print $2}'); do
        ip link delete "$link" 2>/dev/null || true
    done
    ip link delete "$BRIDGE" 2>/dev/null || true
    rm -rf "$ROOT"
    echo "vcluster: down"
}

status() {
    [[ -f $CONF ]] || { echo "vcluster: down"; return 1; }
    for f in "$ROOT"/run/*.init; do
        [[ -f $f ]] || continue
        local n; n=$(basename "$f" .init)
        if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$n: PID 1 = $(cat "$f")"; else echo "$n: dead"; fi
    done
    sinfo -N 2>&1 || return 1
    ! sinfo -h -N -o %T 2>/dev/null | grep -qv 'idle\|mixed\|allocated'
}

kill_node() {  # node loss: the node's PID 1 gets SIGKILL; the kernel ends the rest of its namespace
    [[ -f $ROOT/run/$1.init ]] || die "no node $1"
    kill -KILL "$(cat "$ROOT/run/$1.init")"
    rm -f "$ROOT/run/$1.init"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    kill) kill_node "${2:?usage: vcluster.sh kill NODE}" ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    _init) shift; node_init "$@" ;;
    *) die "usage: vcluster.sh up|down|status|kill NODE|env" ;;
esac
