#!/usr/bin/env bash
# Builds the local control plane's tools into hack/bin/ (git-ignored) from Go
# modules, at the versions pinned in hack/versions.env:
#
#   kube-apiserver kube-controller-manager kube-scheduler   k8s.io/kubernetes
#   kubelet kube-proxy                                      k8s.io/kubernetes (real nodes)
#   kwok kwokctl                                            sigs.k8s.io/kwok
#   helm                                                    helm.sh/helm/v3
#   etcd                                                    go.etcd.io/etcd/server/v3
#   pause     the pod sandbox of real nodes                 hack/tools/cmd/pause
#   coredns   cluster DNS of real nodes                     github.com/coredns/coredns
#   kubectl   only if the kubectl on PATH is not within one minor of the server
#
# CoreDNS is built from its own wrapper module, hack/tools/coredns/ (its
# dependencies stay apart from the control plane's), with the plugins a
# cluster's DNS needs.  All the others come from one wrapper module, hack/tools/, whose go.mod
# pins every k8s.io/* staging module to the v0.x.y matching KUBE_VERSION
# (k8s.io/kubernetes itself replaces them with ./staging folders, so
# `go install k8s.io/kubernetes/cmd/...@vX` cannot work).  When
# hack/versions.env changes, go.mod / go.sum are regenerated (go mod tidy).
#
# Each tool has a stamp (its version, the Go version, go.sum and this
# script); a tool whose stamp matches is not rebuilt, so a second run does
# nothing.  Go's own GOMODCACHE / GOCACHE make a rebuild from a fresh clone
# fast (~20 s); an empty cache works too (~10 minutes on 2 cores).
#
# Usage: hack/build-tools.sh [--force] [--regen] [--check]
#   --force   rebuild every tool
#   --regen   regenerate hack/tools/go.mod and go.sum from versions.env
#   --check   exit 0 if everything is built and up to date, 1 otherwise
# Env: GREENSHARD_BIN_DIR (default hack/bin), GO (the go command).
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS_DIR="$HACK_DIR/tools"
BIN_DIR=${GREENSHARD_BIN_DIR:-$HACK_DIR/bin}
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$HACK_DIR/versions.env"

force=0 regen=0 check=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --regen) regen=1 ;;
    --check) check=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-tools.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[build-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# --- Go toolchain -----------------------------------------------------------
GO=${GO:-}
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go)
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "no Go toolchain: put go on PATH or set GO=/path/to/go"; fi
fi
GO_VERSION=$("$GO" env GOVERSION)

KUBE_STAGING_VERSION="v0.${KUBE_VERSION#v1.}"     # v1.33.13 -> v0.33.13
KUBE_MINOR=$(echo "$KUBE_VERSION" | cut -d. -f2)

# Tools: name -> Go package, and which versions.env entry pins it.
declare -A PKG=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
  [kwokctl]=sigs.k8s.io/kwok/cmd/kwokctl
  [helm]=helm.sh/helm/v3/cmd/helm
  [etcd]=greenshard.local/hack/tools/cmd/etcd
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [pause]=greenshard.local/hack/tools/cmd/pause
  [coredns]=greenshard.local/hack/tools/coredns
)
declare -A VER=(
  [kube-apiserver]=$KUBE_VERSION [kube-controller-manager]=$KUBE_VERSION
  [kube-scheduler]=$KUBE_VERSION [kubectl]=$KUBE_VERSION
  [kwok]=$KWOK_VERSION [kwokctl]=$KWOK_VERSION
  [helm]=$HELM_VERSION [etcd]=$ETCD_VERSION
  [kubelet]=$KUBE_VERSION [kube-proxy]=$KUBE_VERSION [pause]=3.10 [coredns]=$COREDNS_VERSION
)
# The module each tool is built in (default hack/tools).
declare -A MODDIR=([coredns]=coredns)
# Build order: the three kube binaries share most packages, kwok reuses them.
TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kwok kwokctl helm etcd
       pause coredns)

# kubectl: the one on PATH serves if it is within one minor of the server.
kubectl_ok() {
  local k minor
  k=$(command -v kubectl 2>/dev/null) || return 1
  [[ "$k" == "$BIN_DIR/kubectl" ]] && return 1
  minor=$(kubectl version --client -o json 2>/dev/null |
    sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -1)
  [[ -n "$minor" ]] || return 1
  (( minor >= KUBE_MINOR - 1 && minor <= KUBE_MINOR + 1 ))
}
if ! kubectl_ok; then TOOLS+=(kubectl); fi

# --- wrapper module ---------------------------------------------------------
gomod_matches() {
  local f="$TOOLS_DIR/go.mod"
  [[ -f "$f" && -f "$TOOLS_DIR/go.sum" ]] || return 1
  grep -Eq "^[[:space:]]*k8s.io/kubernetes $KUBE_VERSION\$" "$f" &&
  grep -Eq "^[[:space:]]*sigs.k8s.io/kwok $KWOK_VERSION\$" "$f" &&
  grep -Eq "^[[:space:]]*helm.sh/helm/v3 $HELM_VERSION\$" "$f" &&
  grep -Eq "^[[:space:]]*go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$f" &&
  grep -Eq "k8s.io/api => k8s.io/api $KUBE_STAGING_VERSION\$" "$f"
}

regen_gomod() {
  local t0 kmod staging args=()
  t0=$(now)
  log "regenerating hack/tools/go.mod for kubernetes $KUBE_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION, etcd $ETCD_VERSION"
  cd "$TOOLS_DIR"
  printf 'module greenshard.local/hack/tools\n\ngo 1.24.0\n' > go.mod
  rm -f go.sum
  kmod=$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [[ -f "$kmod" ]] || die "could not download k8s.io/kubernetes@$KUBE_VERSION"
  # Every module that k8s.io/kubernetes replaces with ./staging/src/k8s.io/X.
  for staging in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$kmod"); do
    args+=("-replace=$staging=$staging@$KUBE_STAGING_VERSION")
  done
  [[ ${#args[@]} -gt 10 ]] || die "found no staging modules in $kmod"
  # etcd: keep every etcd module at the pinned release (client/v2 is v2.305.x).
  local ev=${ETCD_VERSION#v3.}
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3 raft/v3 server/v3; do
    args+=("-replace=go.etcd.io/etcd/$m=go.etcd.io/etcd/$m@$ETCD_VERSION")
  done
  [[ "$ETCD_VERSION" == v3.5.* ]] && args+=("-replace=go.etcd.io/etcd/client/v2=go.etcd.io/etcd/client/v2@v2.30$ev")
  "$GO" mod edit \
    -require="k8s.io/kubernetes@$KUBE_VERSION" \
    -require="sigs.k8s.io/kwok@$KWOK_VERSION" \
    -require="helm.sh/helm/v3@$HELM_VERSION" \
    -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
    "${args[@]}"
  "$GO" mod tidy
  cd - >/dev/null
  gomod_matches || die "go.mod does not match versions.env after regeneration"
  log "go.mod regenerated in $(elapsed "$t0")"
}

# CoreDNS's wrapper module: requires github.com/coredns/coredns at COREDNS_VERSION.
COREDNS_DIR=$TOOLS_DIR/coredns
coredns_gomod_matches() {
  [[ -f "$COREDNS_DIR/go.sum" ]] &&
  grep -Eq "^(require)?[[:space:]]*github.com/coredns/coredns $COREDNS_VERSION\$" "$COREDNS_DIR/go.mod"
}
regen_coredns_gomod() {
  local t0
  t0=$(now)
  log "regenerating hack/tools/coredns/go.mod for coredns $COREDNS_VERSION"
  cd "$COREDNS_DIR"
  printf 'module greenshard.local/hack/tools/coredns\n\ngo 1.24.0\n' > go.mod
  rm -f go.sum
  "$GO" mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION"
  "$GO" mod tidy
  cd - >/dev/null
  coredns_gomod_matches || die "hack/tools/coredns/go.mod does not match versions.env after regeneration"
  log "coredns go.mod regenerated in $(elapsed "$t0")"
}

# --- stamps -----------------------------------------------------------------
sha() { cat "$@" | sha256sum | cut -c1-16; }  # contents only: the same in every worktree
STAMP_DIR="$BIN_DIR/.stamps"
stamp_of() {  # what a tool's build depends on
  local mod=$TOOLS_DIR/${MODDIR[$1]:-}
  printf '%s %s %s %s\n' "$1" "${VER[$1]}" "$GO_VERSION" \
    "$(sha "${mod%/}/go.sum" "${mod%/}/go.mod" "$HACK_DIR/build-tools.sh" "$TOOLS_DIR/cmd/etcd/main.go" \
          "$TOOLS_DIR/cmd/pause/main.go" "$COREDNS_DIR/main.go")"
}
up_to_date() {
  [[ -x "$BIN_DIR/$1" && -f "$STAMP_DIR/$1" ]] && [[ "$(cat "$STAMP_DIR/$1")" == "$(stamp_of "$1")" ]]
}

# --- ldflags ----------------------------------------------------------------
kube_ldflags() {
  local major=1 minor=$KUBE_MINOR date
  date=$(cd "$TOOLS_DIR" && "$GO" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes 2>/dev/null || true)
  local f=() p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=("-X $p.gitVersion=$KUBE_VERSION" "-X $p.gitMajor=$major" "-X $p.gitMinor=$minor"
        "-X $p.gitTreeState=clean" "-X $p.buildDate=${date:-1970-01-01T00:00:00Z}")
  done
  echo "${f[*]}"
}
ldflags_for() {
  case "$1" in
    kube-*|kubectl|kubelet) echo "-s -w $(kube_ldflags)" ;;
    coredns) echo "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" ;;
    kwok|kwokctl) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}" ;;
    helm) echo "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
               "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR" \
               "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR" ;;
    *) echo "-s -w" ;;
  esac
}

# --- main -------------------------------------------------------------------
if (( regen )) || ! gomod_matches; then
  (( check )) && { log "hack/tools/go.mod does not match versions.env"; exit 1; }
  regen_gomod
fi
if (( regen )) || ! coredns_gomod_matches; then
  (( check )) && { log "hack/tools/coredns/go.mod does not match versions.env"; exit 1; }
  regen_coredns_gomod
fi

todo=()
for t in "${TOOLS[@]}"; do
  if (( force )) || ! up_to_date "$t"; then todo+=("$t"); fi
done
if (( ${#todo[@]} == 0 )); then
  log "all tools up to date in ${BIN_DIR#"$PWD"/} (kubernetes $KUBE_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION, etcd $ETCD_VERSION)"
  exit 0
fi
if (( check )); then log "not up to date: ${todo[*]}"; exit 1; fi

mkdir -p "$BIN_DIR" "$STAMP_DIR"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
total0=$(now)
log "building ${todo[*]} with $GO_VERSION ($(nproc) cores) into $BIN_DIR"
t0=$(now)
(cd "$TOOLS_DIR" && "$GO" mod download)
(cd "$COREDNS_DIR" && "$GO" mod download)
log "  modules downloaded/verified      $(elapsed "$t0")"
for t in "${todo[@]}"; do
  t0=$(now)
  rm -f "$STAMP_DIR/$t"
  if ! (cd "$TOOLS_DIR/${MODDIR[$t]:-}" && "$GO" build -trimpath -ldflags "$(ldflags_for "$t")" -o "$BIN_DIR/$t.tmp" "${PKG[$t]}"); then
    rm -f "$BIN_DIR/$t.tmp"
    die "building $t (${PKG[$t]}) failed"
  fi
  mv -f "$BIN_DIR/$t.tmp" "$BIN_DIR/$t"
  stamp_of "$t" > "$STAMP_DIR/$t"
  log "  built $(printf '%-24s' "$t") ${VER[$t]}  $(elapsed "$t0")"
done
log "done in $(elapsed "$total0")"
