#!/usr/bin/env bash
# A real Slurm cluster on this one machine, for mhsft's Slurm tests: slurmctld and two emulated nodes n1, n2
# (Debian's slurmd runs several nodes on one host with `-N NAME`), each with 1 CPU. Needs root and Debian's
# slurm-wlm and munge packages (`start` installs them when missing and apt-get is there).
#
#   bash scripts/slurm_cluster.sh start     # write slurm.conf, start munged/slurmctld/slurmd x2, wait for idle nodes
#   bash scripts/slurm_cluster.sh status    # sinfo
#   bash scripts/slurm_cluster.sh stop      # stop what `start` started, by pid file
#
# It refuses to touch a slurm.conf it did not write (a machine that already runs Slurm).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by mhsft scripts/slurm_cluster.sh"
NODES=(n1 n2)
PIDS=(/run/slurmd-n1.pid /run/slurmd-n2.pid /run/slurmctld.pid)
MUNGE_PID=/run/munge/munged.pid  # munged's default

die() { echo "slurm_cluster: $*" >&2; exit 1; }

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return
  command -v apt-get >/dev/null || die "slurmctld/munged are missing and there is no apt-get: install Slurm and munge."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real Slurm set-up."
  fi
  local host; host=$(hostname -s)
  mkdir -p /etc/slurm /var/spool/slurmctld /run/munge "${NODES[@]/#//var/spool/slurmd/}"
  {
    echo "$MARK (no cgroup.conf: CgroupPlugin=disabled breaks slurmd 22.05)"
    cat <<EOF
ClusterName=mini
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmdSpoolDir=/var/spool/slurmd/%n
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
JobCompType=jobcomp/none
EOF
    local port=17001
    for node in "${NODES[@]}"; do
      echo "NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=1 RealMemory=10000 State=UNKNOWN"
      port=$((port + 1))
    done
    echo "PartitionName=debug Nodes=$(IFS=,; echo "${NODES[*]}") Default=YES MaxTime=INFINITE State=UP"
  } >"$CONF"
  # The node names must resolve (MASTER_ADDR is the first host of the job's node list): all are this machine.
  grep -qE "^127\.0\.0\.1 ${NODES[*]}$" /etc/hosts || echo "127.0.0.1 ${NODES[*]}" >>/etc/hosts
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  [ "$(id -u)" = 0 ] || die "start needs root (it writes /etc/slurm and starts daemons)."
  install_packages
  write_conf
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  chown munge:munge /run/munge
  alive "$MUNGE_PID" || runuser -u munge -- /usr/sbin/munged
  alive /run/slurmctld.pid || /usr/sbin/slurmctld
  for node in "${NODES[@]}"; do
    alive "/run/slurmd-$node.pid" || /usr/sbin/slurmd -N "$node" 2>/dev/null
  done
  for _ in $(seq 60); do
    if [ "$(sinfo --noheader --states=idle --format=%D 2>/dev/null | head -1)" = "${#NODES[@]}" ]; then
      sinfo
      return 0
    fi
    scontrol update nodename="$(IFS=,; echo "${NODES[*]}")" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  sinfo || true
  die "the nodes did not become idle within 60 s (see /var/log/slurm/)."
}

stop() {
  for pid_file in "${PIDS[@]}" "$MUNGE_PID"; do
    if alive "$pid_file"; then
      pid=$(cat "$pid_file")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) die "usage: $0 start|stop|status" ;;
esac
