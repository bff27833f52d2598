#!/usr/bin/env bash
# registry: what the registry's size costs, with 1,000 and with 20,000
# allocations of other worktrees (WTENV_BENCH_SIZES="1000 20000"):
# `wtenv env` on its fast path (what each `cd` costs), `allocate` and
# `release` (a locked read-modify-write with a sweep and a probe), `ports`,
# `run -- true` (its hold and release: two writes of the file), each
# measured side by side with /bin/true in one hyperfine run.
# Targets (issue 17): env at most 1.5x /bin/true at every size (flat);
# allocate and release under 20 ms. Also `ports` under 5x /bin/true with
# 1,000 (issue 2). With valgrind installed, also the instructions each
# command executes (callgrind): the same on a loaded machine as on a
# quiet one. Prints, never fails.
set -euo pipefail
: "${WTENV:?run through scripts/bench}" "${BENCH_TMP:?run through scripts/bench}"

states=$WTENV_STATE_DIR
for size in ${WTENV_BENCH_SIZES:-1000 20000}; do
  B=$BENCH_TMP/registry-$size
  state=$states/$size
  repo=$B/repo
  mkdir -p "$repo"
  git -C "$repo" init -q -b main
  git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid \
    commit -q --allow-empty -m init
  # The filler takes ports 10000 and up; ours come after, below the
  # ephemeral range (no overlap warning).
  printf '[purposes]\nfeature = "30000-30099"\n' >"$repo/wtenv.toml"

  # Reserved allocations of another repository's worktrees. Their
  # directories exist: a missing one would be swept as "worktree gone".
  scripts/fill-registry "$B" "$state" "$size"

  cd "$repo"
  export WTENV_STATE_DIR=$state
  "$WTENV" -q env >/dev/null # this worktree's own `app` port
  "$WTENV" -q allocate --service s >/dev/null
  echo "registry: $(grep -c '"port"' "$state/registry.json") allocations," \
    "$(wc -c <"$state/registry.json") bytes"

  json=$B/hyperfine.json
  # Each timed allocate is preceded by a release and vice versa (--prepare),
  # so every run does the real work.
  hyperfine -N --warmup 3 --export-json "$json" \
    -p /bin/true -n /bin/true /bin/true \
    -p /bin/true -n "env (hot path)" "$WTENV env -q" \
    -p "$WTENV -q release --service s" -n allocate "$WTENV allocate --service s" \
    -p "$WTENV -q allocate --service s" -n release "$WTENV -q release --service s" \
    -p /bin/true -n ports "$WTENV ports" \
    -p /bin/true -n "run -- true" "$WTENV run -- true" >/dev/null

  counts=$B/instructions
  : >"$counts"
  if command -v valgrind >/dev/null; then
    count() { # name, command...: the instructions the command executes
      local name=$1
      shift
      valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        awk -v name="$name" '/Collected/ {print name "\t" $NF}' >>"$counts"
    }
    count /bin/true /bin/true
    count "env (hot path)" "$WTENV" env -q
    # Whatever hyperfine's last run left: allocated, then released.
    "$WTENV" -q allocate --service s >/dev/null
    "$WTENV" -q release --service s
    count allocate "$WTENV" allocate --service s
    count release "$WTENV" -q release --service s
  fi

  python3 - "$json" "$counts" "$size" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
counts = dict(line.split("\t") for line in open(sys.argv[2]).read().splitlines())
size = int(sys.argv[3])
def q(times, p):
    times = sorted(times)
    return times[min(len(times) - 1, int(p * len(times)))]
base = results["/bin/true"]["median"]
print(f"registry of {size:,} allocations: medians (25th-75th percentile), ratio to /bin/true in the same run"
      + (", instructions (callgrind)" if counts else ""))
for name in ["/bin/true", "env (hot path)", "allocate", "release", "ports", "run -- true"]:
    r = results[name]
    ins = f"  {int(counts[name]):>13,} instr" if name in counts else ""
    print(f"  {name:<15} {r['median'] * 1000:8.2f} ms ({q(r['times'], .25) * 1000:.2f}-{q(r['times'], .75) * 1000:.2f})"
          f"  {r['median'] / base:6.2f}x{ins}")
env = results["env (hot path)"]["median"] / base
print(f"  target env <= 1.5x /bin/true: {'met' if env <= 1.5 else 'missed'} ({env:.2f}x)")
for name in ["allocate", "release"]:
    ms = results[name]["median"] * 1000
    print(f"  target {name} < 20 ms: {'met' if ms < 20 else 'missed'} ({ms:.1f} ms)")
if size == 1000:
    ports = results["ports"]["median"] / base
    print(f"  target ports < 5x /bin/true: {'met' if ports < 5 else 'missed'} ({ports:.1f}x)")
PY
  cd - >/dev/null
done
