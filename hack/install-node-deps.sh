#!/usr/bin/env bash
# Installs, from the machine's Debian package sources, what real nodes and image builds need
# (only the packages that are missing; `apt-get update` runs once, first):
#
#   containerd runc containernetworking-plugins   the node's container runtime and CNI plugins
#   iptables conntrack                             kube-proxy and the node's network rules
#   debootstrap busybox-static buildah             building images here (no registry is reachable)
#
# Needs root (real nodes need it anyway).  Usage: hack/install-node-deps.sh [--check]
#   --check   exit 0 if everything is installed, 1 otherwise (installs nothing)
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables conntrack debootstrap
          busybox-static buildah)
# A command each package provides, to tell whether it is there.
declare -A PROBE=(
  [containerd]=/usr/bin/containerd [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge [iptables]=/usr/sbin/iptables
  [conntrack]=/usr/sbin/conntrack [debootstrap]=/usr/sbin/debootstrap
  [busybox-static]=/bin/busybox [buildah]=/usr/bin/buildah
)

missing=()
for p in "${PACKAGES[@]}"; do
  [[ -x "${PROBE[$p]}" ]] || missing+=("$p")
done
# busybox-static: /bin/busybox may be the dynamic busybox; the static one is what images need.
if [[ -x /bin/busybox ]] && ! dpkg -s busybox-static >/dev/null 2>&1; then missing+=(busybox-static); fi
if (( ${#missing[@]} == 0 )); then exit 0; fi
if [[ "${1:-}" == --check ]]; then echo "missing packages: ${missing[*]}" >&2; exit 1; fi
if (( EUID != 0 )); then
  echo "install-node-deps: needs root to install ${missing[*]} (apt-get)" >&2
  exit 1
fi
echo "[node-deps] apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
