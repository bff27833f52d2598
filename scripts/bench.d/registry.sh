#!/usr/bin/env bash
# registry: `wtenv allocate` + `release`, `wtenv ports` and `ports --all`,
# and `wtenv env` when every port is allocated (what each `cd` costs),
# with a registry of 1,000 allocations (other worktrees of another
# repository), as ratios to /bin/true measured in the same hyperfine run.
# Target (issue 2): `ports` under 5x /bin/true. Prints, never fails.
set -euo pipefail
: "${WTENV:?run through scripts/bench}" "${BENCH_TMP:?run through scripts/bench}"

B=$BENCH_TMP/registry
repo=$B/repo
mkdir -p "$repo"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid \
  commit -q --allow-empty -m init
# Below the ephemeral range (no overlap warning); 1,000 ports for the other
# worktrees, then ours.
printf '[purposes]\nfeature = "10000-11099"\n' >"$repo/wtenv.toml"

# 1,000 reserved allocations of another repository's worktrees. Their
# directories exist: a missing one would be swept as "worktree gone".
scripts/fill-registry "$B" "$WTENV_STATE_DIR"

cd "$repo"
"$WTENV" -q env >/dev/null            # this worktree's own `app` port
"$WTENV" -q allocate --service s >/dev/null
echo "registry: $(grep -c '"port"' "$WTENV_STATE_DIR/registry.json") allocations," \
  "$(wc -c <"$WTENV_STATE_DIR/registry.json") bytes"

json=$B/hyperfine.json
# Each timed allocate is preceded by a release and vice versa (--prepare),
# so every run does the real work: a locked read-modify-write of 1,000
# entries with a sweep and a probe.
hyperfine -N --warmup 3 --export-json "$json" \
  -p /bin/true -n /bin/true /bin/true \
  -p "$WTENV -q release --service s" -n allocate "$WTENV allocate --service s" \
  -p "$WTENV -q allocate --service s" -n release "$WTENV -q release --service s" \
  -p /bin/true -n "env (hot path)" "$WTENV env -q" \
  -p /bin/true -n ports "$WTENV ports" \
  -p /bin/true -n "ports --all" "$WTENV ports --all"

python3 - "$json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
base = results["/bin/true"]["median"]
print("median ratios to /bin/true (same run):")
for name in ["allocate", "release", "env (hot path)", "ports", "ports --all"]:
    r = results[name]
    print(f"  {name:<15} {r['median'] * 1000:7.2f} ms  {r['median'] / base:6.1f}x /bin/true")
alloc_release = (results["allocate"]["median"] + results["release"]["median"]) / base
print(f"  allocate + release: {alloc_release:.1f}x /bin/true")
ports = results["ports"]["median"] / base
print(f"  ports target < 5x: {'met' if ports < 5 else 'missed'} ({ports:.1f}x)")
PY
