#!/usr/bin/env bash
# Start a private single-node SLURM cluster on localhost (Debian packages, run as root, no systemd):
# munged, MariaDB + slurmdbd (so that sacct works), slurmctld, slurmd. Every socket, pid file, log
# and state directory lives under BASE; nothing outside BASE is touched except the apt packages and
# the munge/mysql system users they create. Stop it with stop_slurm.sh BASE.
#
#   tests/slurm/start_slurm.sh BASE        (or SLURM_BASE=... tests/slurm/start_slurm.sh)
#
# Environment (all optional):
#   SLURMCTLD_PORT=6817 SLURMD_PORT=6818 SLURMDBD_PORT=6819 MARIADB_PORT=3307   ports to use
#   SLURM_ACCOUNTING=0   no MariaDB/slurmdbd: faster, but sacct fails and submitit never sees a
#                        cancelled or killed job finish
#   SLURM_KEEP_STATE=1   keep the controller state and the database of a previous start on BASE
# On success: BASE/env.sh exports SLURM_CONF; the node is idle; the partition is "debug".
set -euo pipefail

B=${1:-${SLURM_BASE:-}}
[ -n "$B" ] || { echo "usage: $0 BASE (or set SLURM_BASE)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "error: needs root (slurmd runs jobs as their users)" >&2; exit 2; }
mkdir -p "$B"
B=$(cd "$B" && pwd)
CTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${SLURMDBD_PORT:-6819}
DB_PORT=${MARIADB_PORT:-3307}
ACCOUNTING=${SLURM_ACCOUNTING:-1}
HOST=$(hostname -s)

wait_for() {  # wait_for SECONDS DESCRIPTION LOGFILE COMMAND...: poll COMMAND every 0.2 s
    local limit=$1 what=$2 log=$3; shift 3
    local tries=$((limit * 5))
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            echo "error: $what did not come up within ${limit}s; last lines of $log:" >&2
            tail -n 20 "$log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.2
    done
}

# ---- 1. packages (only what is missing; the postinst "policy-rc.d denied" lines are harmless:
# nothing is auto-started, everything is started below)
packages=(munge slurmctld slurmd slurm-client)
[ "$ACCOUNTING" = 1 ] && packages+=(slurmdbd mariadb-server)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { echo "error: apt-get not found; install ${missing[*]}" >&2; exit 2; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- fresh state unless asked to keep it (controller state and database must match: wiping only
# one of them gives "CLUSTER ID MISMATCH")
if [ "${SLURM_KEEP_STATE:-0}" != 1 ]; then
    rm -rf "$B/state" "$B/mysql" "$B/munge" "$B/run" "$B/log" "$B/etc"
fi
mkdir -p "$B"/{etc,run,log,state/ctld,state/slurmd}
chmod 755 "$B"

# ---- 2. munge with a private key and socket, as user munge
M=$B/munge
mkdir -p "$M"/{etc,run,log,lib}
[ -f "$M/etc/munge.key" ] || mungekey --create --keyfile="$M/etc/munge.key"
chown -R munge:munge "$M"
chmod 700 "$M/etc" "$M/log" "$M/lib"
chmod 755 "$M" "$M/run"
chmod 400 "$M/etc/munge.key"
SOCK=$M/run/munge.socket.2
start-stop-daemon --start --quiet --chuid munge:munge --exec /usr/sbin/munged -- \
    --socket="$SOCK" --key-file="$M/etc/munge.key" --pid-file="$M/run/munged.pid" \
    --log-file="$M/log/munged.log" --seed-file="$M/lib/munged.seed"
wait_for 10 munged "$M/log/munged.log" bash -c "munge -n -S '$SOCK' | unmunge -S '$SOCK'"

# ---- 3. MariaDB for the accounting database (its log lives in a directory mysql can write)
if [ "$ACCOUNTING" = 1 ]; then
    DB=$B/mysql
    mkdir -p "$DB/run"
    chown -R mysql:mysql "$DB"
    if [ ! -d "$DB/data/mysql" ]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" \
            --auth-root-authentication-method=socket --skip-test-db >"$B/log/mariadb-install.log" 2>&1
    fi
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB/data" \
        --socket="$DB/run/mysqld.sock" --pid-file="$DB/run/mysqld.pid" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$DB/mariadb.err" \
        --innodb-buffer-pool-size=512M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
        </dev/null >"$B/log/mariadb.stdout" 2>&1 &
    wait_for 60 mariadbd "$DB/mariadb.err" mariadb-admin --no-defaults -S "$DB/run/mysqld.sock" -uroot ping
    wait_for 10 "mariadbd pid file" "$DB/mariadb.err" test -s "$DB/run/mysqld.pid"
    mariadb --no-defaults -S "$DB/run/mysqld.sock" -uroot -e "
      CREATE DATABASE IF NOT EXISTS slurm_acct_db;
      CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
      CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
      FLUSH PRIVILEGES;"
fi

# ---- 4. slurm.conf: the node line from slurmd -C (this machine's CPUs and layout), reachable at
# 127.0.0.1, with 90 % of the real memory
node_line=$(slurmd -C | head -n 1)
real_mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
node_line=$(sed -e "s/^NodeName=[^ ]*/NodeName=$HOST NodeAddr=127.0.0.1/" \
                -e "s/RealMemory=[0-9]*/RealMemory=$((real_mem * 9 / 10))/" <<<"$node_line")
if [ "$ACCOUNTING" = 1 ]; then
    accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# the slurmctld/sacct <-> slurmdbd connection does not use AuthInfo: it needs the socket here
AccountingStoragePass=$SOCK"
else
    accounting="AccountingStorageType=accounting_storage/none"
fi
cat >"$B/etc/slurm.conf" <<EOF
ClusterName=localcluster
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10: a requeued job restarts after ~10 s instead of the default 120 s
AuthInfo=socket=$SOCK,cred_expire=10
StateSaveLocation=$B/state/ctld
SlurmdSpoolDir=$B/state/slurmd
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: no systemd needed
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$accounting
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# schedule often: a requeued job's begin time passing triggers nothing but these loops
SchedulerParameters=bf_interval=1,sched_interval=2
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
$node_line State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# slurmdbd reads slurmdbd.conf next to SLURM_CONF and insists on mode 600, owned by SlurmUser
if [ "$ACCOUNTING" = 1 ]; then
    cat >"$B/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$B/log/slurmdbd.log
PidFile=$B/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$B/etc/slurmdbd.conf"
fi
echo "export SLURM_CONF=$B/etc/slurm.conf" >"$B/env.sh"
export SLURM_CONF=$B/etc/slurm.conf

# ---- 5. the Slurm daemons, in this order; each daemonizes and writes its pid file
if [ "$ACCOUNTING" = 1 ]; then
    slurmdbd
    wait_for 30 slurmdbd "$B/log/slurmdbd.log" sacctmgr -n list cluster
fi
slurmctld
wait_for 30 slurmctld "$B/log/slurmctld.log" bash -c "scontrol ping | grep -q UP"
slurmd -N "$HOST"
wait_for 30 "node $HOST (idle)" "$B/log/slurmd.log" bash -c "[ \"\$(sinfo -h -N -o %T)\" = idle ]"
echo "slurm is up: SLURM_CONF=$SLURM_CONF, partition debug, node $HOST"
