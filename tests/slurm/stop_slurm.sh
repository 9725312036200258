#!/usr/bin/env bash
# Stop the cluster start_slurm.sh started under BASE: cancel its jobs, then stop slurmd, slurmctld,
# slurmdbd, mariadbd and munged by the PIDs in their pid files (SIGTERM, SIGKILL after a timeout:
# slurmd can ignore SIGTERM while it retries a dead controller). A PID is signalled only while
# /proc/PID/comm still names the daemon, so a reused PID is never hit; a zombie counts as stopped.
#
#   tests/slurm/stop_slurm.sh BASE        (or SLURM_BASE=... tests/slurm/stop_slurm.sh)
# Exits non-zero if a daemon is still alive at the end.
set -uo pipefail

B=${1:-${SLURM_BASE:-}}
[ -n "$B" ] || { echo "usage: $0 BASE (or set SLURM_BASE)" >&2; exit 2; }
[ -d "$B" ] || exit 0
B=$(cd "$B" && pwd)
export SLURM_CONF=$B/etc/slurm.conf

alive() {  # alive PID COMM: the process exists, is not a zombie and is still the named daemon
    local pid=$1 comm=$2 state
    [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
    # field 3 of /proc/PID/stat is the state; the command name (field 2) may hold spaces: cut after ")"
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ]
}

stop() {  # stop PIDFILE COMM TIMEOUT_S
    local pidfile=$1 comm=$2 timeout=$3 pid i
    [ -s "$pidfile" ] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] || return 0
    alive "$pid" "$comm" || { rm -f "$pidfile"; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < timeout * 10; i++)); do
        alive "$pid" "$comm" || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    echo "$comm ($pid) ignored SIGTERM for ${timeout}s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        alive "$pid" "$comm" || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    echo "error: $comm ($pid) is still alive" >&2
    return 1
}

# Jobs first, while the controller still answers: a running job's slurmstepd outlives slurmd.
if [ -f "$SLURM_CONF" ] && [ -s "$B/run/slurmctld.pid" ] \
        && alive "$(tr -dc '0-9' <"$B/run/slurmctld.pid")" slurmctld; then
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null
        for ((i = 0; i < 150; i++)); do  # KillWait is 5 s; give the steps time to go
            [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

status=0
stop "$B/run/slurmd.pid" slurmd 15 || status=1
stop "$B/run/slurmctld.pid" slurmctld 15 || status=1
stop "$B/run/slurmdbd.pid" slurmdbd 15 || status=1
stop "$B/mysql/run/mysqld.pid" mariadbd 30 || status=1
stop "$B/munge/run/munged.pid" munged 10 || status=1
exit $status
