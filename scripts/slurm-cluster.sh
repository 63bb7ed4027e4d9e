#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm integration test
# (crates/dia-cli/tests/slurm.rs) and for trying `dia experiment --slurm` by hand.
#   scripts/slurm-cluster.sh start DIR   # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   scripts/slurm-cluster.sh stop DIR
# Then: export SLURM_CONF=DIR/slurm.conf. Needs Debian's slurm-wlm and munge, run as root.
set -euo pipefail
cmd=${1:?start or stop}
dir=$(realpath -m "${2:?state folder}")
case "$cmd" in
start)
    mkdir -p "$dir/state" "$dir/spool"
    host=$(hostname -s)
    cat > "$dir/slurm.conf" <<CONF
ClusterName=dia
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ReturnToService=2
JobRequeue=1
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    if ! pgrep -x munged >/dev/null; then
        [ -f /etc/munge/munge.key ] || mungekey -c
        mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
        munged --force
    fi
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -c
    slurmd -c
    for _ in $(seq 30); do
        # Ours must be the one answering (another cluster on this host would hold the port).
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then
            for p in slurmctld slurmd; do
                kill -0 "$(cat "$dir/$p.pid" 2>/dev/null)" 2>/dev/null ||
                    { echo "$p did not start; see $dir/$p.log" >&2; exit 1; }
            done
            echo "slurm up: SLURM_CONF=$SLURM_CONF"
            exit 0
        fi
        sleep 1
    done
    echo "slurm did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    exit 1
    ;;
stop)
    for p in slurmd slurmctld; do
        [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
    done
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
