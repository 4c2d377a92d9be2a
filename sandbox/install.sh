#!/usr/bin/env bash
# Install everything the cinder-ha sandbox and its tests need, idempotently.
#
#   Debian packages: pacemaker, corosync, crmsh, resource-agents (ocf-tester),
#                    mariadb-server, rabbitmq-server (the guide's MySQL and RabbitMQ),
#                    ceph-mon/-mgr/-osd/-common + python3-rados/-rbd (cinder's RBD backend),
#                    etcd-server/-client (tooz coordination), haproxy, acl
#   venvs under $CINDER_HA_SANDBOX (default /srv/cinder-ha):
#     venv/keystone  real Keystone + gunicorn
#     venv/cinder    real cinder (+ PyMySQL, etcd3gw; Debian's rados/rbd through a .pth file)
#     venv/salt      Salt, pytest-salt-factories and this project (`pip install .`)
#     venv/lint      ruff and salt-lint (scripts/lint)
#
# Each step is skipped when its stamp file says it is done with the same inputs,
# so a second run costs a few seconds.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/.." && pwd)
SANDBOX=${CINDER_HA_SANDBOX:-/srv/cinder-ha}
STAMPS=$SANDBOX/stamps
mkdir -p "$STAMPS" "$SANDBOX/venv" "$SANDBOX/log"

KEYSTONE_PIP=("keystone==30.0.0" "gunicorn>=23,<28")
# pip's cinder has no MySQL driver (Debian's depends on python3-pymysql): the formula's
# mysql+pymysql:// URL needs PyMySQL in the same interpreter.
# etcd3gw: tooz's etcd3+http driver (the grpc etcd3 driver does not work under eventlet).
CINDER_PIP=("cinder==29.0.0" "PyMySQL>=1.0" "etcd3gw>=2.4")
SALT_PIP=("setuptools>=68" "wheel" "salt==3008.4" "pyinotify>=0.9.6" "keystoneauth1>=5.0" "pytest>=8" "pytest-salt-factories==1.0.5")
LINT_PIP=("ruff==0.17.5" "salt-lint==0.9.2")
APT_PKGS=(pacemaker pacemaker-cli-utils crmsh corosync resource-agents libxml2-utils iproute2 procps psmisc
          curl python3-venv bridge-utils util-linux mariadb-server mariadb-client rabbitmq-server
          ceph-mon ceph-mgr ceph-osd ceph-common python3-rbd python3-rados etcd-server etcd-client haproxy acl)
# Commands the packages above must have put on PATH (a stamp alone can outlive a removal).
APT_CMDS=(crm ocf-tester mariadbd rabbitmq-server ceph-mon ceph-mgr ceph-osd ceph rbd etcd etcdctl haproxy setfacl)

log() { printf '[install %(%H:%M:%S)T] %s\n' -1 "$*"; }

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { printf '%s' "$2" > "$STAMPS/$1"; }

pick_python() {
    # Python >= 3.11 with a working venv module; pyinotify needs < 3.12 (asyncore).
    for candidate in "${PYTHON:-}" python3.11 /usr/bin/python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"; return 0
        fi
    done
    return 1
}

install_apt() {
    local want="${APT_PKGS[*]}"
    local cmd missing=""
    for cmd in "${APT_CMDS[@]}"; do
        PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$cmd" >/dev/null || missing="$missing $cmd"
    done
    if stamp_ok apt "$want" && [ -z "$missing" ]; then
        log "apt: already installed"; return
    fi
    log "apt: installing ${APT_PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # postinst scripts try to start the daemons (MariaDB, RabbitMQ, corosync, etcd, haproxy); without an init
    # system that is harmless noise, and a policy-rc.d that says "no" keeps them from trying.
    # The sandbox starts every daemon itself, on loopback only.
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [ -e "$policy" ] && had_policy=1
    [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; }
    local rc=0
    apt-get install -y -qq --no-install-recommends "${APT_PKGS[@]}" >"$SANDBOX/log/apt.log" 2>&1 || rc=$?
    [ $had_policy = 1 ] || rm -f "$policy"
    [ $rc = 0 ] || { tail -30 "$SANDBOX/log/apt.log"; exit 1; }
    stamp_set apt "$want"
}

make_venv() {  # name, pip args...
    local name=$1; shift
    local venv=$SANDBOX/venv/$name key="$PY $*"
    if stamp_ok "venv-$name" "$key" && [ -x "$venv/bin/python" ]; then
        log "venv $name: up to date"; return
    fi
    log "venv $name: pip install $*"
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" >"$SANDBOX/log/pip-$name.log" 2>&1 \
        || { tail -30 "$SANDBOX/log/pip-$name.log"; exit 1; }
    stamp_set "venv-$name" "$key"
}

link_debian_ceph_bindings() {
    # Debian's rados/rbd modules (python3-rados, python3-rbd) are built for CPython 3.11's ABI:
    # cinder's venv imports them through a .pth file naming a folder of symlinks to just those
    # two .so files (the whole of dist-packages would pull in Debian's other packages).
    local venv=$SANDBOX/venv/cinder dist=/usr/lib/python3/dist-packages
    local links=$venv/debian-ceph soabi site so found=0
    soabi=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI"))')
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    mkdir -p "$links"
    for so in "$dist"/rados.*.so "$dist"/rbd.*.so; do
        [ -e "$so" ] || continue
        case $so in *".$soabi.so") found=$((found + 1)); ln -sfn "$so" "$links/${so##*/}" ;; esac
    done
    [ $found = 2 ] || { log "cinder venv ($soabi): no matching rados/rbd .so in $dist"; exit 1; }
    printf '%s\n' "$links" >"$site/debian-ceph.pth"
    "$venv/bin/python" -W ignore -c 'import rados, rbd, etcd3gw' \
        || { log "cinder venv: import rados, rbd, etcd3gw failed"; exit 1; }
    log "venv cinder: Debian's rados and rbd importable (through $site/debian-ceph.pth)"
}

install_project() {
    # `pip install .` into its own target folder, always fresh (pure Python, a few seconds):
    # with PYTHONPATH=$SANDBOX/site Salt finds the modules through the salt.loader entry
    # point (pip mode); without it, only file_roots + saltutil.sync_all can (formula mode).
    log "project: pip install $PROJECT --target $SANDBOX/site"
    local fresh="$SANDBOX/site.new.$$"
    rm -rf "$fresh"
    "$SANDBOX/venv/salt/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
        --target "$fresh" "$PROJECT" >"$SANDBOX/log/pip-project.log" 2>&1 \
        || { tail -30 "$SANDBOX/log/pip-project.log"; rm -rf "$fresh"; exit 1; }
    # swap in one rename each, so a test run in progress never sees a half-installed tree
    rm -rf "$SANDBOX/site.old.$$"
    [ -d "$SANDBOX/site" ] && mv "$SANDBOX/site" "$SANDBOX/site.old.$$"
    mv "$fresh" "$SANDBOX/site"
    rm -rf "$SANDBOX/site.old.$$"
}

PY=$(pick_python) || { log "no Python >= 3.11 with venv found (apt-get install python3-venv)"; exit 1; }
install_apt
# The venvs are independent: build them in parallel (2 cores, mostly network-bound).
make_venv keystone "${KEYSTONE_PIP[@]}" & k=$!
make_venv cinder "${CINDER_PIP[@]}" & c=$!
make_venv salt "${SALT_PIP[@]}" & s=$!
make_venv lint "${LINT_PIP[@]}" & l=$!
wait $k; wait $c; wait $s; wait $l
link_debian_ceph_bindings
install_project
log "done: venvs in $SANDBOX/venv, logs in $SANDBOX/log"
