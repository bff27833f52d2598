#!/usr/bin/env bash
# wtenv run: (1) the overhead of `wtenv run -- true` against bare `true`, in
# one hyperfine run (target: at most 1.5 ms added at the median), and what
# the socket hand-off adds (`run --sockets -- true` beside `run -- true`);
# (2) the time from SIGINT to every port released for a 3-level tree
# (sh → sh → python3 server), median of 10 runs (target: under 10 ms), and
# for a real dev server, Vite 8 through `npm run dev` (npm → sh → node),
# median of 20 runs; (3) the race the hand-off closes: a process binding
# the port in a tight loop while a service stops and starts 100 times,
# with and without `--sockets`. Prints figures; never fails on a slow
# machine.
set -euo pipefail
: "${WTENV:?run through scripts/bench}" "${BENCH_TMP:?}"
vite_app=$PWD/target/fixtures/node
[ -x "$vite_app/node_modules/.bin/vite" ] || scripts/fixtures
repo=$BENCH_TMP/run-repo
mkdir -p "$repo"
cd "$repo"
git init -q -b main . 2>/dev/null || git init -q .
git -c user.name=b -c user.email=b@example.invalid commit -q --allow-empty -m init
# Other benchmarks and tests share this machine: skip their ports.
printf '[purposes]\nfeature = "32000-32767"\n[allocation]\nskip_occupied = true\n' >wtenv.toml

json=$BENCH_TMP/run-hyperfine.json
hyperfine -N --warmup 3 --runs 200 --export-json "$json" "$WTENV run -- true" "true"
python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
wt, bare = r[0]["median"] * 1000, r[1]["median"] * 1000
def q(times, p):
    times = sorted(times)
    return times[min(len(times) - 1, int(p * len(times)))] * 1000
added = wt - bare
print(f"median: wtenv run -- true {wt:.2f} ms ({q(r[0]['times'], .25):.2f}-{q(r[0]['times'], .75):.2f}),"
      f" true {bare:.2f} ms ({q(r[1]['times'], .25):.2f}-{q(r[1]['times'], .75):.2f}),"
      f" added {added:.2f} ms (target <= 1.5 ms: {'met' if added <= 1.5 else 'missed'})")
PY

json=$BENCH_TMP/run-sockets-hyperfine.json
hyperfine -N --warmup 3 --runs 200 --export-json "$json" "$WTENV run --sockets -- true" "$WTENV run -- true"
python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
sk, plain = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"median: wtenv run --sockets -- true {sk:.2f} ms, wtenv run -- true {plain:.2f} ms, the hand-off adds {sk - plain:.2f} ms")
PY

cat >"$BENCH_TMP/server.py" <<'PY'
import os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(8)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(600)
PY
pidfile=$BENCH_TMP/server.pid
# Readiness: the python server wrote its pidfile (it never accepts, so a
# probing connection would only fill its backlog); Vite answers a request.
tree_ready() { [ -s "$pidfile" ]; }
vite_ready() { curl -sf -o /dev/null -m 1 "http://127.0.0.1:$1/@vite/client"; }

# SIGINT to all ports released: starts `$@` under wtenv run `runs` times,
# waits until `ready PORT` succeeds, then times SIGINT → wtenv exited, the
# port refusing and the registry without holds.
sigint_to_release() {
  local label=$1 runs=$2 ready=$3
  shift 3
  # Job control: without it, a script's background command starts with
  # SIGINT ignored, and wtenv leaves an inherited ignore alone.
  set -m
  local times=() wt port t0 t1
  for _ in $(seq "$runs"); do
    rm -f "$pidfile"
    "$WTENV" run --grace 10s -- "$@" </dev/null >/dev/null 2>&1 &
    wt=$!
    port=
    until [ -n "$port" ] && "$ready" "$port"; do
      sleep 0.01
      port=$("$WTENV" ports --json | python3 -c 'import json,sys; a=json.load(sys.stdin)["allocations"]; print(a[0]["port"] if a else "")')
    done
    t0=$(date +%s%N)
    kill -INT "$wt"
    wait "$wt" || true
    # wtenv exits only after the tree is gone and the holds are released;
    # confirm both, then stop the clock.
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.001; done
    while grep -q '"holders"' "$WTENV_STATE_DIR/registry.json"; do sleep 0.001; done
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000)))
  done
  set +m
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "SIGINT to all ports released (%s, %d runs): median %.1f ms (min %.1f, max %.1f)\n", label, NR, m/1000, a[1]/1000, a[NR]/1000}'
}

sigint_to_release "3-level tree, target < 10 ms" 10 tree_ready sh -c "sh -c 'python3 $BENCH_TMP/server.py $pidfile'; true" 2>/dev/null
sigint_to_release "Vite via npm run dev" 20 vite_ready npm run dev --prefix "$vite_app" 2>/dev/null

# (3) The race. The racer binds the port (dual-stack, SO_REUSEADDR, as a
# server would) in a tight loop until told to stop; each of the service's
# 100 runs either binds $PORT itself (plain `run`) or takes fd 3
# (`run --sockets`), listens, and exits.
cat >"$BENCH_TMP/racer.py" <<'PY'
import os, socket, sys
port, go, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
wins = tries = 0
while not os.path.exists(go):  # count only while the service restarts
    pass
while not os.path.exists(stop):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("::", port)); s.listen(1); wins += 1
    except OSError:
        pass
    s.close(); tries += 1
print(wins, tries)
PY
cat >"$BENCH_TMP/restart.py" <<'PY'
import os, socket, sys
try:
    if sys.argv[1] == "fd":
        s = socket.socket(fileno=3)
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", int(os.environ["PORT"])))
    s.listen(8)
except OSError:
    sys.exit(1)  # the racer holds the port: this start failed
PY
race() {
  local mode=$1 flag=() go=$BENCH_TMP/race.go stop=$BENCH_TMP/race.stop out=$BENCH_TMP/race.out
  [ "$mode" = fd ] && flag=(--sockets)
  rm -f "$go" "$stop"
  port=$("$WTENV" -q allocate --service app)
  python3 "$BENCH_TMP/racer.py" "$port" "$go" "$stop" >"$out" &
  racer=$!
  failed=$("$WTENV" -q run "${flag[@]}" -- sh -c "touch $go; f=0; for i in \$(seq 100); do python3 -S $BENCH_TMP/restart.py $mode || f=\$((f+1)); done; touch $stop; echo \$f")
  wait "$racer"
  read -r wins tries <"$out"
  echo "race, $2: the racer bound the port $wins times in $tries tries; $failed of 100 service starts failed"
}
race port "plain run (the service binds \$PORT)"
race fd "run --sockets (the service takes fd 3)"
