#!/usr/bin/env bash
# Keep the chart's CRDs (charts/greenshard/crds/) identical to the one source, crds/*.yaml
# (the samples in crds/samples/ are not CRDs and are not copied).
#
# Usage: hack/sync-chart-crds.sh [--check]
#   (no argument)  copy crds/*.yaml into the chart and delete chart CRDs that have no source
#   --check        change nothing; exit 1 and name the files when the chart's copy has drifted
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/crds
DST=$ROOT/charts/greenshard/crds

mode=sync
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "sync-chart-crds: unknown argument: $1 (usage: $0 [--check])" >&2; exit 2 ;;
esac

shopt -s nullglob
sources=("$SRC"/*.yaml)
(( ${#sources[@]} )) || { echo "sync-chart-crds: no CRDs in $SRC" >&2; exit 2; }

drift=()
for src in "${sources[@]}"; do
  name=$(basename "$src")
  if ! cmp -s "$src" "$DST/$name"; then
    drift+=("$name")
    [[ $mode == sync ]] && { mkdir -p "$DST"; cp "$src" "$DST/$name"; }
  fi
done
for dst in "$DST"/*; do
  name=$(basename "$dst")
  if [[ ! -f "$SRC/$name" ]]; then
    drift+=("$name (not in crds/: deleted by a sync)")
    [[ $mode == sync ]] && rm -f "$dst"
  fi
done

if [[ $mode == check ]]; then
  if (( ${#drift[@]} )); then
    printf 'sync-chart-crds: charts/greenshard/crds/ differs from crds/: %s\n' "${drift[*]}" >&2
    echo "sync-chart-crds: run 'make chart-crds' (hack/sync-chart-crds.sh) and commit the result" >&2
    exit 1
  fi
  echo "sync-chart-crds: charts/greenshard/crds/ matches crds/ (${#sources[@]} CRDs)"
elif (( ${#drift[@]} )); then
  printf 'sync-chart-crds: synced %s\n' "${drift[@]}"
else
  echo "sync-chart-crds: already in sync (${#sources[@]} CRDs)"
fi
