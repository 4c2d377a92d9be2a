#!/bin/bash
# PID 1 of one controller node (started by sandbox/multinode.py inside the node's network
# namespace under `unshare --mount --uts --ipc --pid --fork --kill-child --propagation private
# --mount-proc`). Gives the node private /run, /dev/shm and per-node cluster/cinder/ceph/salt state,
# starts corosync, pacemakerd and (if configured) a salt-minion, then reaps orphans.
# SIGTERM = graceful shutdown; SIGKILL of this process = power cut (the kernel kills the namespace).
#
#   node-init.sh NODE_NAME NODE_DIR
set -u
name=$1
dir=$2
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
log() { echo "[$name init $(date +%T.%3N)] $*"; }

hostname "$name"
# libqb names its shared-memory files after PIDs, and PIDs repeat across PID namespaces:
# every node needs its own /run and /dev/shm. `mount -n`: nothing goes to the shared mtab.
mount -n -t tmpfs -o mode=0755,size=64m tmpfs /run || exit 1
install -d -o hacluster -g haclient -m 0750 /run/crm
install -d -m 1755 /run/resource-agents
install -d -m 1777 /run/lock
mount -n -t tmpfs -o mode=1777,size=64m tmpfs /dev/shm || exit 1

bind() {
    mount -n --bind "$1" "$2" || { log "bind-mount $1 on $2 failed"; exit 1; }
}
bind "$dir/etc/corosync" /etc/corosync
bind "$dir/etc/hosts" /etc/hosts
bind "$dir/etc/hostname" /etc/hostname
bind "$dir/etc/cinder" /etc/cinder
# the Ceph client files of this node: ceph.conf (mon host 198.18.0.254), cinder's keyring
bind "$dir/etc/ceph" /etc/ceph
# balanced mode's HAProxy config: each node writes and reloads its own
bind "$dir/etc/haproxy" /etc/haproxy
bind "$dir/lib/pacemaker" /var/lib/pacemaker
bind "$dir/lib/corosync" /var/lib/corosync
bind "$dir/log/pacemaker" /var/log/pacemaker
bind "$dir/log/corosync" /var/log/corosync
# The nodes' own copy of ocf:openstack:cinder-api (multinode.py keeps it in sync with the tree).
bind "$NODE_AGENT_DIR" "$OCF_PROVIDER_DIR"
# The node's own alert agents: the formula installs cinder_ha_alert here, and the machine's
# copy (the single-node sandbox's, which its clean removes) is another machine's file.
mkdir -p /usr/share/pacemaker/alerts /var/lib/cinder-ha
bind "$dir/share/pacemaker/alerts" /usr/share/pacemaker/alerts
# its alert spool too (the machine's is the single-node sandbox's, whatever starts first)
bind "$dir/lib/cinder-ha" /var/lib/cinder-ha
# Optional places cinder or salt may use, when they exist on the shared root.
for pair in "lib/cinder:/var/lib/cinder" "log/cinder:/var/log/cinder" "salt:/etc/salt"; do
    if [ -d "${pair#*:}" ] && [ -d "$dir/${pair%%:*}" ]; then bind "$dir/${pair%%:*}" "${pair#*:}"; fi
done

minion_pid=
shutdown() {
    log "SIGTERM: graceful shutdown"
    [ -n "$minion_pid" ] && kill "$minion_pid" 2>/dev/null
    timeout 90 pacemakerd --shutdown >/dev/null 2>&1
    timeout 30 corosync-cfgtool -H --force >/dev/null 2>&1
    log "stopped"
    exit 0
}
trap shutdown TERM INT

corosync -f >>"$dir/log/corosync.stdout" 2>&1 &
for _ in $(seq 200); do
    corosync-cfgtool -s >/dev/null 2>&1 && break
    sleep 0.05
done
log "corosync up"
pacemakerd >>"$dir/log/pacemakerd.stdout" 2>&1 &
log "pacemakerd started"
if [ -f "$dir/salt/minion" ]; then
    env -i PATH="$PATH" LANG=C.UTF-8 HOME=/root PYTHONPATH=/srv/cinder-ha/site \
        /srv/cinder-ha/venv/salt/bin/salt-minion -c "$dir/salt" --log-level=quiet \
        >>"$dir/log/salt-minion.stdout" 2>&1 &
    minion_pid=$!
    log "salt-minion started (pid $minion_pid)"
fi
# The reaper: agents' daemons are re-parented to PID 1, and a zombie would hang an agent's
# `kill -0` stop loop. bash reaps every child when `wait` returns.
while :; do
    sleep 1 &
    wait $!
done
