#!/usr/bin/env bash
# A single-node SLURM on this machine for the compute layer's SLURM test (tests/nlp/compute/
# test_slurm.py): munge + slurmctld + slurmd from Debian's slurm-wlm, configured in a folder of
# its own ($1), nothing written under /etc except what the munge package already holds.
# Usage: .ci/slurm-single-node.sh start DIR | stop DIR. Needs root (slurmd runs jobs as users).
set -euo pipefail
action=${1:?start|stop}; dir=${2:?state folder}
mkdir -p "$dir"
conf="$dir/slurm.conf"
if [ "$action" = stop ]; then
  for pid in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  exit 0
fi
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
  || { echo "slurm-wlm and munge are not installed (apt-get install slurm-wlm munge)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "a single-node SLURM needs root to run slurmd" >&2; exit 2; }
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2/1024/2)}' /proc/meminfo)
mkdir -p "$dir/spool" "$dir/state" "$dir/munge" "$dir/log"
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
chown munge:munge "$dir/munge" 2>/dev/null || true
# munged: its own socket in the state folder, the client side told through MUNGE_SOCKET
# is not possible for slurm (it uses the default socket), so use the default one.
mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged --pid-file="$dir/munge/munged.pid" 2>"$dir/log/munged.log" \
    || /usr/sbin/munged --force --pid-file="$dir/munge/munged.pid"
  cp "$dir/munge/munged.pid" "$dir/munged.pid" 2>/dev/null || true
fi
cat > "$conf" <<CONF
ClusterName=barometre-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmctldPort=$((6817 + RANDOM % 1000))
SlurmdPort=$((7817 + RANDOM % 1000))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$conf"
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "SLURM_CONF=$conf"; exit 0
  fi
  sleep 0.5
done
echo "the single-node SLURM did not come up; see $dir/log" >&2
exit 1
