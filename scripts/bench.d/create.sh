#!/usr/bin/env bash
# `wtenv create --ports` + `wtenv remove` against the bare git it wraps
# (`git worktree add -b` + `git worktree remove`) on the same repository, in
# one hyperfine run. Both sides run as a small bash script, so bash's own
# start-up cancels out in the ratio. Each iteration uses a unique
# identifier (both sides leave the branch, as `remove` does by default;
# an untimed --prepare deletes them).
# What wtenv adds: two process starts (its own), the port probes, and two
# durable registry writes (fsync of the file and the directory). Its git
# processes match git's own: `update-ref` + `worktree add` where
# `worktree add -b` runs `git branch` itself.
set -euo pipefail
dir=$BENCH_TMP/create
repo=$dir/repo
mkdir -p "$repo"
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.invalid \
       GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.invalid GIT_CONFIG_NOSYSTEM=1
git -C "$repo" init -q -b main
# A checkout with some substance: 200 small files.
for i in $(seq 200); do echo "file $i" >"$repo/f$i.txt"; done
# Below the ephemeral range (32768-60999), as users are advised: a range
# inside it warns on every command, and outgoing connections may take its
# ports at any time.
printf '[purposes]\nfeature = "12000-12099"\n' >"$repo/wtenv.toml"
git -C "$repo" add -A
git -C "$repo" commit -q -m init

cat >"$dir/wtenv.sh" <<'SH'
cd "$1"
id=w${EPOCHREALTIME/./}
"$WTENV" -q create --purpose feature --identifier "$id" --ports >/dev/null
"$WTENV" -q remove "$id"
SH
cat >"$dir/git.sh" <<'SH'
cd "$1"
id=g${EPOCHREALTIME/./}
git worktree add -q -b "feature/$id" -- "../repo.worktrees/feature-$id" HEAD
git worktree remove -- "../repo.worktrees/feature-$id"
SH

# Untimed, before every run: drop the branches earlier runs left, so every
# run starts from the same repository (they pile up and slow git down).
cat >"$dir/prune.sh" <<'SH'
git -C "$1" for-each-ref --format='delete %(refname)' refs/heads/feature | git -C "$1" update-ref --stdin
SH

cd "$dir"
# The load on these machines drifts within seconds, and hyperfine runs one
# command's runs, then the other's: a drift lands on one side. So: several
# short rounds, each one hyperfine run with both sides, and the median of
# the per-round ratios of medians. The drift also has a direction: every
# run deletes a checkout, and on ext4 each new file then skips the block
# group's recently deleted inodes, so the side that runs second is slower
# (the same git command as both sides: second/first 1.22x, median of 7
# rounds). So the sides take turns going first, over an even number of
# rounds. Few runs per round: on a VM whose disk is rate-limited, a long
# run of checkouts uses up the I/O budget and the later rounds measure the
# throttle (git itself 3-5x slower).
rounds=8
git_side=(-n "git worktree add + remove" "bash $dir/git.sh $repo")
wtenv_side=(-n "wtenv create --ports + remove" "bash $dir/wtenv.sh $repo")
for round in $(seq "$rounds"); do
  if ((round % 2)); then
    sides=("${git_side[@]}" "${wtenv_side[@]}")
  else
    sides=("${wtenv_side[@]}" "${git_side[@]}")
  fi
  hyperfine -N --warmup 1 --runs 10 --style basic --export-json "$dir/round-$round.json" \
    --prepare "bash $dir/prune.sh $repo" "${sides[@]}"
done
python3 - "$dir" "$rounds" <<'PY'
import json, statistics, sys
ratios, gits = [], []
for n in range(1, int(sys.argv[2]) + 1):
    r = json.load(open(f"{sys.argv[1]}/round-{n}.json"))["results"]
    median = {x["command"].split()[0]: statistics.median(x["times"]) for x in r}
    git, wt = median["git"], median["wtenv"]
    ratios.append(wt / git)
    gits.append(git)
    first = r[0]["command"].split()[0]
    print(f"round {n}: median git {git*1e3:.1f} ms, wtenv {wt*1e3:.1f} ms, ratio {wt/git:.2f}x ({first} first)")
print(f"create: wtenv create --ports + remove vs git worktree add + remove: "
      f"median ratio {statistics.median(ratios):.2f}x (target <= 1.1x)")
if max(gits) > 1.5 * min(gits):
    print(f"warning: git itself ran {min(gits)*1e3:.0f}-{max(gits)*1e3:.0f} ms across rounds: "
          "the machine (its disk) changed speed during the run; the ratio is not reliable")
PY
