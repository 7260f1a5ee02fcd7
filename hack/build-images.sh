#!/usr/bin/env bash
# Builds the local cluster's container images here (no registry is reachable) with buildah,
# and writes each as a docker-archive that a real node's containerd imports
# (hack/cluster.sh load):
#
#   base        localhost/greenshard/python:3.11-bookworm   debootstrap of Debian bookworm with
#               python3 + venv: the FROM of the project's Dockerfile (PYTHON_IMAGE build arg)
#   greenshard  ghcr.io/greenshard/greenshard:<appVersion>   the project's Dockerfile, tagged as
#               the chart's default image, so the chart runs it unchanged
#   probe       localhost/greenshard/pipeline-probe:0.1.0   busybox + hack/images/probe/probe.sh
#   pause       localhost/greenshard/pause:3.10             the pod sandbox (hack/tools/cmd/pause)
#   coredns     localhost/greenshard/coredns:<version>      cluster DNS (hack/tools/coredns)
#
# An image whose inputs (files, versions, this script) are unchanged is not rebuilt: its stamp
# sits beside its archive in GREENSHARD_IMAGE_DIR (default hack/.state/images).  Needs root;
# installs buildah, debootstrap and busybox-static itself (hack/install-node-deps.sh).
#
# Usage: hack/build-images.sh [--print-ref] [IMAGE...]   (default: greenshard probe)
#   --print-ref  print "NAME REF ARCHIVE" per image instead of building
# Env: GREENSHARD_DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HACK_DIR/.." && pwd)
BIN_DIR=${GREENSHARD_BIN_DIR:-$HACK_DIR/bin}
IMAGE_DIR=${GREENSHARD_IMAGE_DIR:-$HACK_DIR/.state/images}
MIRROR=${GREENSHARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$HACK_DIR/versions.env"
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/charts/greenshard/Chart.yaml")

declare -A REF=(
  [base]=localhost/greenshard/python:3.11-bookworm
  [greenshard]=ghcr.io/greenshard/greenshard:$APP_VERSION
  [probe]=localhost/greenshard/pipeline-probe:0.1.0
  [pause]=localhost/greenshard/pause:3.10
  [coredns]=localhost/greenshard/coredns:$COREDNS_VERSION
)
ALL=(base greenshard probe pause coredns)

log() { printf '[images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

print_ref=0 todo=()
for arg in "$@"; do
  case "$arg" in
    --print-ref) print_ref=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    all) todo+=("${ALL[@]}") ;;
    base|greenshard|probe|pause|coredns) todo+=("$arg") ;;
    *) die "unknown image or option: $arg (images: ${ALL[*]})" ;;
  esac
done
(( ${#todo[@]} )) || todo=(greenshard probe)
if (( print_ref )); then
  for i in "${todo[@]}"; do echo "$i ${REF[$i]} $IMAGE_DIR/$i.tar"; done
  exit 0
fi

(( EUID == 0 )) || die "building images needs root (buildah, debootstrap)"
bash "$HACK_DIR/install-node-deps.sh"
mkdir -p "$IMAGE_DIR"
IMAGE_DIR=$(cd "$IMAGE_DIR" && pwd)
# chroot isolation: RUN steps need no OCI runtime (crun fails on this host's hybrid cgroups);
# the host's network, so that pip reaches the package index.
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=overlay

inputs_of() {  # a hash of everything an image is built from
  local files=("$HACK_DIR/build-images.sh") extra=""
  case "$1" in
    base) files+=("$HACK_DIR/images/base/Dockerfile"); extra="$MIRROR bookworm" ;;
    greenshard)
      files+=("$ROOT/Dockerfile" "$ROOT/.dockerignore" "$ROOT/requirements.lock" "$ROOT/pyproject.toml" "$ROOT/README.md")
      while IFS= read -r f; do files+=("$ROOT/$f"); done < <(cd "$ROOT" && git ls-files -co --exclude-standard operator | sort)
      extra=$(inputs_of base) ;;
    probe) files+=("$HACK_DIR/images/probe/Dockerfile" "$HACK_DIR/images/probe/probe.sh" /bin/busybox) ;;
    pause|coredns) files+=("$HACK_DIR/images/$1/Dockerfile" "$BIN_DIR/$1") ;;
  esac
  local f existing=()
  for f in "${files[@]}"; do [[ -f "$f" ]] && existing+=("$f"); done
  { echo "$extra"; cat "${existing[@]}"; } | sha256sum | cut -c1-16
}
up_to_date() {
  local stamp="$IMAGE_DIR/$1.stamp"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$(inputs_of "$1")" ]] || return 1
  [[ "$1" == base ]] || [[ -s "$IMAGE_DIR/$1.tar" ]] || return 1
  buildah inspect --type image "${REF[$1]}" >/dev/null 2>&1
}

build() {  # build NAME CONTEXT [buildah build args...]
  local name=$1 context=$2; shift 2
  local dockerfile=$HACK_DIR/images/$name/Dockerfile
  [[ "$name" == greenshard ]] && dockerfile=$ROOT/Dockerfile
  buildah build --quiet --layers --network host --isolation chroot \
    -f "$dockerfile" -t "${REF[$name]}" "$@" "$context" >/dev/null
}

save() {  # the docker-archive a node imports
  local name=$1
  rm -f "$IMAGE_DIR/$name.tar.tmp"
  buildah push --quiet "${REF[$name]}" "docker-archive:$IMAGE_DIR/$name.tar.tmp:${REF[$name]}" >/dev/null
  mv -f "$IMAGE_DIR/$name.tar.tmp" "$IMAGE_DIR/$name.tar"
}

build_base() {
  local work=$IMAGE_DIR/base.work
  rm -rf "$work"; mkdir -p "$work/rootfs"
  log "  debootstrap bookworm (python3, python3-venv) from $MIRROR"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$work/rootfs" "$MIRROR" > "$IMAGE_DIR/base.debootstrap.log" 2>&1; then
    tail -20 "$IMAGE_DIR/base.debootstrap.log" >&2
    die "debootstrap failed (log: $IMAGE_DIR/base.debootstrap.log)"
  fi
  (
    cd "$work/rootfs"
    ln -sf python3 usr/bin/python
    rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* usr/share/man/* \
      usr/share/info/* var/log/*.log var/log/apt/* tmp/* root/.cache
    # No services start in an image.
    rm -f etc/hostname etc/resolv.conf etc/machine-id
  )
  tar --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
  cp "$HACK_DIR/images/base/Dockerfile" "$work/"
  build base "$work"
  rm -rf "$work"
}

build_greenshard() {
  # pip in the build reaches the package index through this machine's CA bundle (a TLS
  # proxy may sit in between): mounted for the RUN steps only, never part of the image.
  local conf=$IMAGE_DIR/pip.conf ca=/etc/ssl/certs/ca-certificates.crt vols=()
  if [[ -f "$ca" ]]; then
    printf '[global]\ncert = /etc/greenshard-build-ca.crt\n' > "$conf"
    vols=(-v "$ca:/etc/greenshard-build-ca.crt:ro" -v "$conf:/etc/pip.conf:ro")
  fi
  build greenshard "$ROOT" --build-arg "PYTHON_IMAGE=${REF[base]}" "${vols[@]}"
}

build_probe() {
  local work=$IMAGE_DIR/probe.work applet
  rm -rf "$work"; mkdir -p "$work/root/bin" "$work/root/tmp"
  cp /bin/busybox "$work/root/bin/busybox"
  for applet in sh nc nslookup sleep date cat echo printf grep sed tr hostname env mkdir rm \
                true false timeout wc; do
    ln -s busybox "$work/root/bin/$applet"
  done
  chmod 1777 "$work/root/tmp"
  tar --numeric-owner --owner=0 --group=0 -C "$work/root" -cf "$work/busybox.tar" .
  cp "$HACK_DIR/images/probe/Dockerfile" "$HACK_DIR/images/probe/probe.sh" "$work/"
  build probe "$work"
  rm -rf "$work"
}

build_binary_image() {  # pause, coredns: FROM scratch + one static binary from hack/bin
  local name=$1 work=$IMAGE_DIR/$1.work
  [[ -x "$BIN_DIR/$name" ]] || die "no $BIN_DIR/$name: run hack/build-tools.sh"
  rm -rf "$work"; mkdir -p "$work"
  cp "$BIN_DIR/$name" "$HACK_DIR/images/$name/Dockerfile" "$work/"
  build "$name" "$work"
  rm -rf "$work"
}

# greenshard is built FROM base: build base first when it is needed.
declare -A seen=()
ordered=()
for i in "${todo[@]}"; do
  [[ "$i" == greenshard && -z "${seen[base]:-}" ]] && { ordered+=(base); seen[base]=1; }
  [[ -z "${seen[$i]:-}" ]] && { ordered+=("$i"); seen[$i]=1; }
done

for i in "${ordered[@]}"; do
  if up_to_date "$i"; then log "$i up to date: ${REF[$i]}"; continue; fi
  t0=$(now)
  rm -f "$IMAGE_DIR/$i.stamp"
  case "$i" in
    base) build_base ;;
    greenshard) build_greenshard ;;
    probe) build_probe ;;
    pause|coredns) build_binary_image "$i" ;;
  esac
  [[ "$i" == base ]] || save "$i"
  inputs_of "$i" > "$IMAGE_DIR/$i.stamp"
  log "built $i: ${REF[$i]} in $(elapsed "$t0")"
done
