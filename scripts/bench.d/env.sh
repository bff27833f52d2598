#!/usr/bin/env bash
# env: the path users touch on every `cd`.
# - `wtenv env` on the fast path (every service has its reserved port) with
#   a registry of 1,000 allocations, vs /bin/true, vs a shell that only
#   exports the ports (`sh -c 'export PORT=...'`: what a user with fixed
#   ports runs instead, the floor of doing nothing) and vs
#   `git rev-parse --show-toplevel`, and vs an empty Rust program linked as
#   wtenv is (what start-up alone costs), in one hyperfine run. Target:
#   <= 1.5x /bin/true (issue 17; `scripts/bench registry` measures it with
#   20,000 allocations too).
# - What one port costs: `wtenv env` with one and with five services.
# - `direnv exec` of an .envrc with `use wtenv` vs one with a plain
#   `export`, in one run. Target: <= 1.2x.
# - Peak RSS of `wtenv env` (/usr/bin/time -v "Maximum resident set size",
#   else python's getrusage(RUSAGE_CHILDREN).ru_maxrss). Target: < 10 MB.
#   With /usr/bin/time, also its page faults, and the empty program's.
# Prints, never fails.
set -euo pipefail
: "${WTENV:?run through scripts/bench}" "${BENCH_TMP:?run through scripts/bench}"

B=$BENCH_TMP/env
repo=$B/repo
plain=$B/plain
mkdir -p "$repo" "$plain"
export DIRENV_LOG_FORMAT=
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid \
  commit -q --allow-empty -m init
printf '[purposes]\nfeature = "10000-11099"\n[services.web]\nenv = ["PORT", "WEB_PORT"]\n[services.api]\n[env]\nAPI_URL = "http://localhost:{port.api}"\n' \
  >"$repo/wtenv.toml"

# 1,000 reserved allocations of another repository's worktrees (their
# directories exist: a missing one would be swept as "worktree gone").
scripts/fill-registry "$B" "$WTENV_STATE_DIR"

cd "$repo"
"$WTENV" -q env >/dev/null # allocates this worktree's two ports: later runs are the fast path
echo "registry: $(grep -c '"port"' "$WTENV_STATE_DIR/registry.json") allocations," \
  "$(wc -c <"$WTENV_STATE_DIR/registry.json") bytes"

# The floor of any Rust program built as wtenv is (static-pie glibc, as
# scripts/release links it): an empty `main`, which does nothing but start
# and exit.
floor=$B/floor
printf 'fn main() {}\n' >"$floor.rs"
"${BENCH_RUSTC:?run through scripts/bench}" -O -C target-feature=+crt-static -o "$floor" "$floor.rs"
evict_from_cache "$floor"

json=$B/env.json
hyperfine -N --warmup 3 --export-json "$json" \
  -n /bin/true /bin/true \
  -n "wtenv env" "$WTENV env" \
  -n "git rev-parse" "git rev-parse --show-toplevel" \
  -n "sh export" "sh -c 'export PORT=5000 WEB_PORT=5000 API_PORT=5001'" \
  -n "wtenv --version" "$WTENV --version" \
  -n "static Rust floor" "$floor"

# Where the time goes (context): the same env on an empty registry, in a
# run of its own (the registry is chosen by the environment, as users do).
empty=$B/empty
mkdir -p "$empty" && chmod 700 "$empty"
WTENV_STATE_DIR=$empty "$WTENV" -q env >/dev/null
ejson=$B/env-empty.json
WTENV_STATE_DIR=$empty hyperfine -N --warmup 3 --export-json "$ejson" \
  -n /bin/true /bin/true \
  -n "wtenv env, empty registry" "$WTENV env"

# What each port costs: `wtenv env` in worktrees of one and of five
# services, in one run. Every port `env` exports is verified on each call
# (four bind + listen and two loopback connects: README "Port probe"), so
# the difference over four ports is one port's share, probe and export
# together. `env -C` (coreutils) enters each worktree; it costs both the
# same, and only their difference is reported.
ports_repo() { # DIR SERVICES...
  local dir=$1 svc
  shift
  git init -q "$dir"
  printf '[purposes]\nfeature = "20000-20999"\n' >"$dir/wtenv.toml"
  for svc in "$@"; do printf '[services.%s]\n' "$svc" >>"$dir/wtenv.toml"; done
  (cd "$dir" && "$WTENV" -q env >/dev/null)
}
ports_repo "$B/one" web
ports_repo "$B/five" web api db cache worker
pjson=$B/env-ports.json
hyperfine -N --warmup 3 --export-json "$pjson" \
  -n /bin/true /bin/true \
  -n "1 port" "env -C $B/one $WTENV env" \
  -n "5 ports" "env -C $B/five $WTENV env"

# direnv: `use wtenv` from direnv's lib dir, vs a plain export.
mkdir -p "$XDG_CONFIG_HOME/direnv/lib"
"$WTENV" hook direnv >"$XDG_CONFIG_HOME/direnv/lib/wtenv.sh"
echo "use wtenv" >"$repo/.envrc"
echo "export FOO=bar" >"$plain/.envrc"
# For reference: what one direnv `watch_file` (a `direnv watch` process)
# costs; `use wtenv` extends the watch list in-process instead.
watch=$B/watch
mkdir -p "$watch"
printf 'export FOO=bar\nwatch_file wtenv.toml\n' >"$watch/.envrc"
direnv allow "$repo"
direnv allow "$plain"
direnv allow "$watch"
djson=$B/direnv.json
hyperfine -N --warmup 3 --export-json "$djson" \
  -n "direnv plain export" "direnv exec $plain /bin/true" \
  -n "direnv export + watch_file" "direnv exec $watch /bin/true" \
  -n "direnv use wtenv" "direnv exec $repo /bin/true"

python3 - "$json" "$djson" "$ejson" "$pjson" <<'PY'
import json, sys
def load(p):
    return {r["command"]: r["median"] for r in json.load(open(p))["results"]}
r, d, e, p = (load(a) for a in sys.argv[1:5])
env = r["wtenv env"]
print("median ratios (each pair measured in the same run):")
print(f"  wtenv env        {env*1000:7.2f} ms  {env/r['/bin/true']:5.2f}x /bin/true (target <= 1.5x: {'met' if env/r['/bin/true'] <= 1.5 else 'missed'})")
print(f"  wtenv env        {env*1000:7.2f} ms  {env/r['git rev-parse']:5.2f}x git rev-parse --show-toplevel")
sh = r["sh export"]
print(f"  wtenv env        {env*1000:7.2f} ms  {env/sh:5.2f}x sh -c 'export PORT=...' ({sh*1000:.2f} ms, {sh/r['/bin/true']:.2f}x /bin/true)")
f = r["static Rust floor"]
print(f"  wtenv env        {env*1000:7.2f} ms  {env/f:5.2f}x an empty static Rust program ({f*1000:.2f} ms, {f/r['/bin/true']:.2f}x /bin/true): the part that is wtenv's work")
v = r["wtenv --version"]
print(f"  (wtenv --version, start-up and clap: {v*1000:.2f} ms, {v/r['/bin/true']:.2f}x /bin/true)")
m = e["wtenv env, empty registry"]
print(f"  (wtenv env, empty registry: {m*1000:.2f} ms, {m/e['/bin/true']:.2f}x /bin/true in its own run)")
port = (p["5 ports"] - p["1 port"]) / 4
print(f"  each port env verifies and exports: {port*1000:.3f} ms, {port/p['/bin/true']:.2f}x /bin/true"
      f" (1 port vs 5 in one run): this config's 2 ports are {2*port/p['/bin/true']:.2f}x of env's ratio")
ratio = d["direnv use wtenv"] / d["direnv plain export"]
print(f"  direnv use wtenv {d['direnv use wtenv']*1000:7.2f} ms  {ratio:5.2f}x direnv plain export (target <= 1.2x: {'met' if ratio <= 1.2 else 'missed'})")
w = d["direnv export + watch_file"]
print(f"  (for reference, one watch_file: {w*1000:.2f} ms, {w/d['direnv plain export']:.2f}x direnv plain export)")
PY

if [ -x /usr/bin/time ]; then
  usage=$(/usr/bin/time -v "$WTENV" env 2>&1 >/dev/null)
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' <<<"$usage")
  how="/usr/bin/time -v"
  # What the hot path's layout saves (scripts/release): page faults of
  # one run, its pages in the cache as after the runs above.
  echo "  page faults of wtenv env: $(awk -F': ' '/Minor .*page faults/ {print $2}' <<<"$usage") (the empty static Rust program: $(/usr/bin/time -v "$floor" 2>&1 | awk -F': ' '/Minor .*page faults/ {print $2}'))"
else
  kb=$(python3 -c 'import resource, subprocess, sys
subprocess.run([sys.argv[1], "env"], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$WTENV")
  how="getrusage(RUSAGE_CHILDREN)"
fi
awk -v kb="$kb" -v how="$how" 'BEGIN { mb = kb / 1024; printf "  peak RSS of wtenv env: %.1f MB (%s; target < 10 MB: %s)\n", mb, how, (mb < 10 ? "met" : "missed") }'
