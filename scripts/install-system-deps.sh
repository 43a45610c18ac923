#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the integration tests need, and nothing that is already there.
#
#   docker-registry   the CNCF distribution registry the tests run on 127.0.0.1 (own config per test)
#   buildah           builds the test images (as root: STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot);
#                     its Depends bring uidmap and golang-github-containers-common
#                     (/etc/containers/policy.json, registries.conf). vfs + chroot need neither
#                     fuse-overlayfs nor crun/runc (apt's default Recommends install them anyway).
#   busybox-static    the static /bin/busybox the tests put into FROM-scratch base images
#   apache2-utils     htpasswd -B, for the Basic-auth test registry
#   skopeo, git       inspecting/copying images; the builder clones git contexts
#   podman            the podman builder, and `podman system service tcp:127.0.0.1:PORT` as a real
#                     build endpoint in the tests (own --root/--runroot per service, vfs). Its
#                     podman.socket unit listens on a root-only unix socket, never on the network.
#   docker.io         only when no `docker` CLI is on PATH (this machine image ships one): the tests
#                     drive podman's Docker-compatible API with it. Its daemon is kept from starting.
#   chromium, chromium-driver
#                     the status page's browser test: headless Chromium driven by Selenium through
#                     /usr/bin/chromedriver (no browser is downloaded at test time)
#
# Idempotent: runs `apt-get update` and `apt-get install` only when something is missing.
# The docker-registry package ships a service that serves /etc/docker/registry/config.yml on ALL
# interfaces (:5000). The tests never use it, so this script keeps it from starting during the
# install and stops/disables it afterwards (systemd or sysvinit, or neither as in a container).
# Set ACRTASK_KEEP_REGISTRY_SERVICE=1 to leave an existing service alone.
set -euo pipefail

PACKAGES=(docker-registry buildah busybox-static apache2-utils skopeo git uidmap podman chromium chromium-driver)
REGISTRY_CONFIG=/etc/docker/registry/config.yml
REGISTRY_BIN=/usr/bin/docker-registry
POLICY_RC=/usr/sbin/policy-rc.d

log() { printf '[install-system-deps] %s\n' "$*"; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
        log "not root: using sudo"
    else
        log "ERROR: run as root or install sudo" >&2
        exit 1
    fi
fi
as_root() { "${SUDO[@]}" "$@"; }

is_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if is_installed "$pkg"; then
        log "present: $pkg"
    else
        missing+=("$pkg")
    fi
done
if ! command -v docker >/dev/null 2>&1 && ! is_installed docker.io; then
    missing+=(docker.io)
fi

temp_policy=""
cleanup() {
    if [[ -n $temp_policy ]]; then
        as_root rm -f "$temp_policy"
    fi
}
trap cleanup EXIT

if ((${#missing[@]})); then
    log "missing: ${missing[*]}"
    # Keep the package's postinst from starting the all-interfaces registry service at all.
    # policy-rc.d is consulted by invoke-rc.d (sysvinit) and deb-systemd-invoke (systemd).
    if [[ ! -e $POLICY_RC ]]; then
        log "installing a temporary $POLICY_RC that forbids starting docker-registry"
        temp_policy=$POLICY_RC
        as_root tee "$POLICY_RC" >/dev/null <<'EOF'
#!/bin/sh
# Temporary, from acrtask scripts/install-system-deps.sh: do not start the registry or docker services.
for arg in "$@"; do
    case "$arg" in docker-registry|docker-registry.service|docker|docker.service|docker.socket|containerd|containerd.service) exit 101 ;; esac
done
exit 0
EOF
        as_root chmod 0755 "$POLICY_RC"
    else
        log "$POLICY_RC already exists; leaving it in place"
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "running: apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    log "running: apt-get install -y ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    cleanup
    temp_policy=""
else
    log "all packages present; no apt-get update/install needed"
fi

# --- keep the package's registry service (0.0.0.0:5000, package config) from running --------------
package_registry_pids() {
    # Processes of /usr/bin/docker-registry serving the package config (never the tests' registries,
    # which serve a temp config on 127.0.0.1).
    local dir pid exe
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        exe=$(readlink "$dir/exe" 2>/dev/null || true)
        [[ $exe == "$REGISTRY_BIN" ]] || continue
        if tr '\0' '\n' <"$dir/cmdline" 2>/dev/null | grep -qxF -- "$REGISTRY_CONFIG"; then
            echo "$pid"
        fi
    done
}

if [[ ${ACRTASK_KEEP_REGISTRY_SERVICE:-0} == 1 ]]; then
    log "ACRTASK_KEEP_REGISTRY_SERVICE=1: leaving the docker-registry service as it is"
elif is_installed docker-registry; then
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-enabled --quiet docker-registry.service 2>/dev/null \
            || systemctl is-active --quiet docker-registry.service 2>/dev/null; then
            log "systemd: disabling and stopping docker-registry.service"
            as_root systemctl disable --now docker-registry.service || true
        else
            log "systemd: docker-registry.service is already disabled and inactive"
        fi
    else
        log "no running systemd (e.g. a container): handling the sysvinit script"
        if command -v update-rc.d >/dev/null 2>&1 && compgen -G '/etc/rc[2345].d/S*docker-registry' >/dev/null; then
            log "update-rc.d docker-registry disable"
            as_root update-rc.d docker-registry disable >/dev/null 2>&1 || true
        fi
        if [[ -e /var/run/docker-registry.pid ]] && [[ -x /etc/init.d/docker-registry ]]; then
            log "/etc/init.d/docker-registry stop"
            as_root /etc/init.d/docker-registry stop || true
        fi
    fi
    mapfile -t pids < <(package_registry_pids)
    if ((${#pids[@]})); then
        log "stopping docker-registry serving $REGISTRY_CONFIG: pid(s) ${pids[*]}"
        as_root kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            mapfile -t pids < <(package_registry_pids)
            ((${#pids[@]})) || break
            sleep 0.5
        done
        if ((${#pids[@]})); then
            log "killing pid(s) ${pids[*]}"
            as_root kill -KILL "${pids[@]}" 2>/dev/null || true
        fi
    else
        log "no docker-registry process serves $REGISTRY_CONFIG"
    fi
    if command -v ss >/dev/null 2>&1 && ss -ltnH 'sport = :5000' 2>/dev/null | grep -qE '(0\.0\.0\.0|\*|\[::\]):5000'; then
        log "WARNING: something still listens on all interfaces at port 5000:"
        ss -ltnpH 'sport = :5000' || true
    fi
fi

# --- report -------------------------------------------------------------------------------------------
log "buildah: $(buildah --version)"
log "docker-registry: $("$REGISTRY_BIN" --version 2>&1 | head -n1)"
log "skopeo: $(skopeo --version)"
log "busybox: $(dpkg-query -W -f='${Package} ${Version}' busybox-static)"
log "chromium: $(dpkg-query -W -f='${Version}' chromium), chromedriver: $(dpkg-query -W -f='${Version}' chromium-driver)"
log "done"
