#!/usr/bin/env bash
# wtenv up: time from `wtenv up` to all of three HTTP services ready (their
# /healthz answers 200, as wtenv's http check sees it), against the same
# three servers started by hand with a shell loop polling their health
# endpoints with curl every 100 ms (wtenv polls readiness every 100 ms too).
# One hyperfine run, both side by side; the stack of the previous round is
# stopped in --prepare, outside the timing. Prints figures; never fails on
# a slow machine.
set -euo pipefail
: "${WTENV:?run through scripts/bench}" "${BENCH_TMP:?}"
repo=$BENCH_TMP/up-repo
mkdir -p "$repo"
cd "$repo"
git init -q -b main . 2>/dev/null || git init -q .
git -c user.name=b -c user.email=b@example.invalid commit -q --allow-empty -m init

cat >"$BENCH_TMP/health.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
# Other benchmarks and tests share this machine: skip their ports (run's
# benchmark starts at 32000).
{
  printf '[purposes]\nfeature = "32500-32767"\n[allocation]\nskip_occupied = true\n'
  for s in a b c; do
    printf '[services.%s]\nrun = "exec python3 %s $%s_PORT"\nhealth = { http = "/healthz" }\n' \
      "$s" "$BENCH_TMP/health.py" "${s^^}"
  done
} >wtenv.toml
# The ports, reserved once; the servers started by hand use the same ones.
eval "$("$WTENV" env --format bash)"
ports="$A_PORT $B_PORT $C_PORT"

state=$BENCH_TMP/up-bench
mkdir -p "$state"
# Stops the previous round's stack (each in its own session) and waits
# until its ports are free.
cat >"$state/stop.sh" <<SH
for f in "$state"/*.pid; do
  [ -e "\$f" ] || continue
  kill -TERM -- -"\$(cat "\$f")" 2>/dev/null || true
  while kill -0 "\$(cat "\$f")" 2>/dev/null; do sleep 0.01; done
  rm -f "\$f"
done
rm -f "$state/up.log"
for p in $ports; do
  while (exec 3<>"/dev/tcp/127.0.0.1/\$p") 2>/dev/null; do sleep 0.01; done
done
SH
cat >"$state/up.sh" <<SH
cd "$repo"
setsid "$WTENV" up >/dev/null 2>"$state/up.log" &
echo \$! >"$state/up.pid"
until [ "\$(grep -c ' | ready in ' "$state/up.log" 2>/dev/null)" -ge 3 ] 2>/dev/null; do sleep 0.005; done
SH
cat >"$state/hand.sh" <<SH
n=0
for p in $ports; do
  n=\$((n + 1))
  setsid python3 "$BENCH_TMP/health.py" "\$p" >/dev/null 2>&1 &
  echo \$! >"$state/hand\$n.pid"
done
n=0
for p in $ports; do
  n=\$((n + 1))
  # A server that died (its port taken meanwhile) fails the run, not hangs it.
  until curl -sf -o /dev/null "http://127.0.0.1:\$p/healthz"; do
    kill -0 "\$(cat "$state/hand\$n.pid")" || exit 1
    sleep 0.1
  done
done
SH

json=$BENCH_TMP/up-hyperfine.json
hyperfine -N --warmup 2 --runs 10 --prepare "bash $state/stop.sh" --cleanup "bash $state/stop.sh" \
  --export-json "$json" -n "wtenv up" "bash $state/up.sh" -n "by hand" "bash $state/hand.sh"
python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
up, hand = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"three HTTP services ready, median: wtenv up {up:.0f} ms, by hand {hand:.0f} ms, ratio {up / hand:.2f}")
PY
