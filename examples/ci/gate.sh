#!/usr/bin/env bash
# The regression gate of examples/ci/github-actions.yml, the same steps run locally.
#
#   examples/ci/gate.sh save    # on the main branch: replay the scenarios, keep them as baselines
#   examples/ci/gate.sh check   # on a change: replay again, compare with the baselines
#
# `check` exits 1 when a selector regressed past its threshold (examples/ci/thresholds.toml),
# 2 on bad input or a missing baseline, 0 otherwise. It writes, per scenario, the Markdown
# table to $WORK/compare-NAME.md and github-action-benchmark's JSON to $WORK/bench/NAME/.
# Settings (environment):
#   OPA         the opa binary                 (default: target/release/opa, built if absent)
#   SCENARIOS   scenario files, space-separated (default: scenarios/dynamic.toml)
#   DEADLINES   deadlines in ms                 (default: 1,2,4)
#   PROFILE     calibration profile             (default: the shipped one)
#   THRESHOLDS  thresholds file                 (default: examples/ci/thresholds.toml)
#   BASELINES   where baselines live            (default: baselines)
#   WORK        replays and compare outputs     (default: ci-gate)
set -euo pipefail

mode="${1:-}"
if [ "$mode" != save ] && [ "$mode" != check ]; then
  echo "usage: $0 save|check (see the comment at the top of $0)" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")/../.." && pwd)"
opa="${OPA:-$here/target/release/opa}"
if [ -z "${OPA:-}" ] && [ ! -x "$opa" ]; then
  cargo build --release -p opa-harness --manifest-path "$here/Cargo.toml"
fi
scenarios="${SCENARIOS:-$here/scenarios/dynamic.toml}"
deadlines="${DEADLINES:-1,2,4}"
profile="${PROFILE:-$here/supernet/checkpoints/fashion-mnist/profile.parquet}"
thresholds="${THRESHOLDS:-$here/examples/ci/thresholds.toml}"
baselines="${BASELINES:-baselines}"
work="${WORK:-ci-gate}"
mkdir -p "$work"

status=0
for scenario in $scenarios; do
  name="$(basename "$scenario" .toml)"
  run="$work/runs/$name"
  mkdir -p "$work/runs"
  "$opa" replay --profile "$profile" "$scenario" --deadline-ms "$deadlines" --out "$run" --force
  if [ "$mode" = save ]; then
    "$opa" baseline save "$name" --run "$run" --dir "$baselines" --force
    continue
  fi
  set +e
  "$opa" compare "$baselines/$name" "$run" --thresholds "$thresholds" \
    --markdown "$work/compare-$name.md" --json-dir "$work/bench/$name"
  code=$?
  set -e
  case "$code" in
    0) ;;
    1) echo "gate: $name regressed (table in $work/compare-$name.md)" >&2
       [ "$status" -eq 0 ] && status=1 ;;
    *) echo "gate: comparing $name failed (exit $code)" >&2
       status=2 ;;
  esac
done
exit "$status"
