# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared paths and helpers for the test SLURM (several nodes on this one host); sourced by the scripts beside it.
# The configuration must live at /etc/slurm/slurm.conf: the executor plugin's job step
# strips SLURM_CONF from the job environment, so a config elsewhere breaks the inner srun.

SLURM_ETC=/etc/slurm
SLURM_STATE=/var/spool/slurmctld
SLURM_SPOOL=/var/spool/slurmd
SLURM_LOGS=/var/log/slurm
SLURMCTLD_PID=/run/slurmctld.pid
# One slurmd per node (this Slurm build has MULTIPLE_SLURMD): SLURM expands %n to the node's name.
SLURMD_PID_PATTERN=/run/slurmd-%n.pid
SLURMDBD_PID=/run/slurmdbd.pid
MUNGED_PID=/run/munge/munged.pid
# The accounting database: a private MariaDB instance (its own datadir, socket and pid file, no
# system config read), so that it never touches a MariaDB the machine may run for other things.
DB_DIR=/var/lib/tomosnake-slurmdb
DB_RUN=/run/tomosnake-slurmdb
DB_SOCKET=$DB_RUN/mysqld.sock
DB_PID=$DB_RUN/mysqld.pid
DB_PORT=3316  # not MariaDB's usual 3306, which a database of the machine's own may hold
DB_USER=slurm
DB_PASS=tomosnake-ci  # a throwaway test cluster's database, reachable on 127.0.0.1 only
HOST=$(hostname -s)
# The nodes, all slurmd daemons on this host (slurmd -N <node>), each on its own port from 6831.
NODE_COUNT=${TOMOSNAKE_SLURM_NODES:-3}
NODES=()
for ((i = 1; i <= NODE_COUNT; i++)); do NODES+=("n$i"); done
NODE_LIST="n[1-$NODE_COUNT]"
FIRST_PORT=6831
# CPUs each node offers, more than a small CI machine has in all (slurmd accepts the configured
# count with SlurmdParameters=config_overrides). A stage's chunk jobs then all run at once
# instead of nproc at a time: test jobs are mostly interpreter start-up, and every extra wave
# of jobs costs an interval of the executor plugin's status polling.
NODE_CPUS=${TOMOSNAKE_SLURM_CPUS:-4}

# slurmd_pid_file NODE: where that node's slurmd writes its PID.
slurmd_pid_file() { echo "${SLURMD_PID_PATTERN//%n/$1}"; }

die() { echo "slurm: $*" >&2; exit 1; }

require_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

# pid_of PIDFILE COMM: print the PID in PIDFILE if that process is alive and named COMM.
pid_of() {
    local pid
    [[ -r $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]] || return 1
    echo "$pid"
}

# wait_for CMD...: run CMD (quietly) every 0.1 s until it succeeds; fails after 30 s.
wait_for() {
    local i
    for ((i = 0; i < 300; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# node_state NODE: its state as sinfo reports it (idle, mix, alloc, drain, down, inval, ...).
node_state() { sinfo -h -N -n "$1" -o %t 2>/dev/null | head -n1; }

# node_states: "n1:idle n2:idle ..." for every node.
node_states() {
    local node out=()
    for node in "${NODES[@]}"; do out+=("$node:$(node_state "$node")"); done
    echo "${out[*]}"
}

# nodes_in REGEX: every node's state matches REGEX.
nodes_in() {
    local node
    for node in "${NODES[@]}"; do [[ $(node_state "$node") =~ $1 ]] || return 1; done
}

# nodes_ready: every node takes jobs.
nodes_ready() { nodes_in '^(idle|mix|alloc)$'; }

# CGROUP_MEMORY: the cgroup v1 memory controller's mount point (Debian 12's Slurm 22.05 enforces job
# memory through cgroup/v1; its cgroup/v2 needs a pure unified hierarchy with systemd).
CGROUP_MEMORY=/sys/fs/cgroup/memory

# cgroup_memory_why_not: nothing when slurmd can confine job memory with cgroup v1 here, else why not.
cgroup_memory_why_not() {
    local probe=$CGROUP_MEMORY/tomosnake-probe-$$
    grep -qs " $CGROUP_MEMORY cgroup .*\bmemory\b" /proc/mounts ||
        { echo "no cgroup v1 memory controller mounted at $CGROUP_MEMORY"; return; }
    mkdir "$probe" 2>/dev/null || { echo "cannot create a cgroup under $CGROUP_MEMORY"; return; }
    [[ -e $probe/memory.limit_in_bytes ]] || echo "no memory.limit_in_bytes in a new cgroup"
    rmdir "$probe"
}

# render_config DIR: write slurm.conf, gres.conf, cgroup.conf and slurmdbd.conf for this machine into
# DIR. Job memory is enforced with cgroups where the kernel allows (a job above its --mem ends
# OUT_OF_MEMORY, as on a facility cluster with ConstrainRAMSpace); otherwise the cluster runs without
# enforcement and the reason is printed.
render_config() {
    local dir=$1 mem why proctrack=proctrack/linuxproc task=task/none node nodes="" i=0
    why=$(cgroup_memory_why_not)
    if [[ -z $why ]]; then
        proctrack=proctrack/cgroup
        task=task/cgroup
    else
        echo "slurm: memory NOT enforced ($why): jobs may exceed --mem unnoticed" >&2
    fi
    # slurmd -C reports the memory as slurmd sees it at registration.
    mem=$(slurmd -C | head -n1 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    # one socket of single-thread cores each; the machine's memory less ~1 GiB for the OS, shared out
    mem=$(((mem - 1024) / NODE_COUNT))
    for node in "${NODES[@]}"; do
        nodes+="NodeName=$node NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$((FIRST_PORT + i)) CPUs=$NODE_CPUS Boards=1"
        nodes+=" SocketsPerBoard=1 CoresPerSocket=$NODE_CPUS ThreadsPerCore=1 RealMemory=$mem Gres=gpu:1 State=UNKNOWN"$'\n'
        i=$((i + 1))
    done
    cat >"$dir/slurm.conf" <<CONF
# Generated by .ci/slurm/start.sh: a test cluster of several nodes on one host, not for production.
ClusterName=tomosnake-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SLURM_STATE
SlurmdSpoolDir=$SLURM_SPOOL/%n
SlurmctldPidFile=$SLURMCTLD_PID
SlurmdPidFile=$SLURMD_PID_PATTERN
SlurmctldLogFile=$SLURM_LOGS/slurmctld.log
SlurmdLogFile=$SLURM_LOGS/slurmd-%n.log
ProctrackType=$proctrack
TaskPlugin=$task
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
DefMemPerCPU=1000
ReturnToService=2
# A job whose node fails ends NODE_FAIL (Snakemake resubmits it elsewhere) instead of being requeued
# behind Snakemake's back.
JobRequeue=0
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoreFlags=job_comment
GresTypes=gpu
${nodes%$'\n'}
PartitionName=cpu Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE_LIST MaxTime=INFINITE State=UP
CONF
    # Used by task/cgroup only: RAM and RAM+swap confined to the job's --mem, nothing more.
    cat >"$dir/cgroup.conf" <<CONF
# Generated by .ci/slurm/start.sh.
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainDevices=no
ConstrainRAMSpace=yes
AllowedRAMSpace=100
ConstrainSwapSpace=yes
AllowedSwapSpace=0
CONF
    # File=/dev/null makes a fake GPU the node can register; without it the node is INVAL.
    echo "NodeName=$NODE_LIST Name=gpu File=/dev/null" >"$dir/gres.conf"
    cat >"$dir/slurmdbd.conf" <<CONF
# Generated by .ci/slurm/start.sh: job accounting for the test cluster.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$SLURMDBD_PID
LogFile=$SLURM_LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
}
