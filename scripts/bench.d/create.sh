#!/usr/bin/env bash
# `wtenv create --ports` + `wtenv remove` against the bare git it wraps
# (`git worktree add -b` + `git worktree remove`) on the same repository, in
# one hyperfine run. Target: at most 1.1x.
# Both sides run as a small bash script, so bash's own start-up cancels out
# in the ratio. Each iteration uses a unique identifier (both sides leave
# the branch, as `remove` does by default; an untimed --prepare deletes
# them). wtenv runs the same git processes as bare git (`update-ref` +
# `worktree add` where `worktree add -b` runs `git branch` itself), so what
# it adds is fixed: two process lifetimes of its own, its checks (the port
# probes, the worktree listing), and the durable registry writes (fsync of
# the file and of the directory; create's runs while git checks out). The
# ratio therefore depends on how long git takes: two repositories are
# measured, a small one (200 files) and a mid-sized one (2,000 files;
# WTENV_BENCH_FILES="200 1000" picks others), and the fixed cost is printed
# in milliseconds.
#
# The disk's state moves git's time a lot: on ext4, a file created within
# about 30 s of many deletions is slower to make (the inode allocator
# skips recently deleted inodes), so on a disk that has seen minutes of
# such churn git itself drifts from 35 to 230 ms within one run (200
# files), and the side that runs second is slower (the same git command
# as both sides: second/first 1.22x). So, as root with loop devices (a
# fresh machine), every round runs on a freshly made ext4 filesystem that
# holds the repository and the registry, as a user's one disk does (one
# journal: the registry's fsync also commits git's metadata); the sides
# take turns going first; the ratio is the median of each round's ratio of
# medians. This is the conservative setting for wtenv: a fresh filesystem
# is git's fastest case, and an fsync through a loop device costs several
# times what it costs on the disk below (both printed). Without root, the
# rounds run in a temporary directory and a warning says when git's speed
# moved.
set -euo pipefail
: "${WTENV:?run through scripts/bench}" "${BENCH_TMP:?run through scripts/bench}"
dir=$BENCH_TMP/create
mkdir -p "$dir"
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.invalid \
       GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.invalid GIT_CONFIG_NOSYSTEM=1

# Made once: a loop-mounted ext4 image, remade before every round.
img=$dir/fs.img
mnt=$dir/mnt
fresh_fs=false
if [[ $(id -u) == 0 ]] && command -v mkfs.ext4 >/dev/null; then
  mkdir -p "$mnt"
  truncate -s 512M "$img"
  # Inode tables and journal written now: no lazy init in the background.
  new_fs() { mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img" && mount -o loop "$img" "$mnt"; }
  if new_fs 2>/dev/null; then
    fresh_fs=true
    trap 'umount "$mnt" 2>/dev/null || true' EXIT
    umount "$mnt"
  fi
fi
$fresh_fs || echo "note: not root, or no loop devices: the rounds run in $dir, on a disk whose state drifts"

# The median fsync latency in directory $1.
fsync_ms() {
  python3 - "$1" <<'PY'
import os, statistics, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT)
times = []
for _ in range(30):
    os.write(fd, b"x" * 100)
    t = time.perf_counter()
    os.fsync(fd)
    times.append(time.perf_counter() - t)
os.close(fd)
os.unlink(path)
print(f"{statistics.median(times) * 1e3:.2f}")
PY
}

# A fresh repository of $1 files in 20 directories under $2, with the
# registry beside it.
make_repo() {
  local files=$1 base=$2
  rm -rf "$base/repo" "$base/repo.worktrees" "$base/state"
  mkdir -p "$base/repo" "$base/state"
  git -C "$base/repo" init -q -b main
  for i in $(seq "$files"); do
    mkdir -p "$base/repo/d$((i % 20))"
    echo "file $i" >"$base/repo/d$((i % 20))/f$i.txt"
  done
  # Below the ephemeral range (32768-60999), as users are advised: a
  # range inside it warns on every command, and outgoing connections may
  # take its ports at any time.
  printf '[purposes]\nfeature = "12000-12099"\n' >"$base/repo/wtenv.toml"
  git -C "$base/repo" add -A
  git -C "$base/repo" commit -q -m init
}

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

rounds=8
sizes=${WTENV_BENCH_FILES:-200 2000}
# shellcheck disable=SC2086 # a list of sizes
for files in $sizes; do
  for round in $(seq "$rounds"); do
    if $fresh_fs; then
      new_fs
      base=$mnt
    else
      base=$dir/$files
    fi
    make_repo "$files" "$base"
    repo=$base/repo
    git_side=(-n "git worktree add + remove" "bash $dir/git.sh $repo")
    wtenv_side=(-n "wtenv create --ports + remove" "bash $dir/wtenv.sh $repo")
    if ((round % 2)); then
      sides=("${git_side[@]}" "${wtenv_side[@]}")
    else
      sides=("${wtenv_side[@]}" "${git_side[@]}")
    fi
    WTENV_STATE_DIR=$base/state hyperfine -N --warmup 1 --runs 10 --style none \
      --export-json "$dir/$files-$round.json" \
      --prepare "bash $dir/prune.sh $repo" "${sides[@]}" >/dev/null
    if $fresh_fs; then
      [[ $round == 1 && $files == "${sizes%% *}" ]] && echo "fsync: $(fsync_ms "$mnt") ms on the fresh filesystem, $(fsync_ms "$dir") ms on the disk below"
      umount "$mnt"
    fi
  done
done

python3 - "$dir" "$rounds" "$fresh_fs" "$sizes" <<'PY'
import json, statistics, sys
d, rounds, fresh = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "true"
sizes = [int(n) for n in sys.argv[4].split()]
print("each round on", "a freshly made ext4 filesystem" if fresh else "the disk as it is")
for files in sizes:
    ratios, gits, added = [], [], []
    for n in range(1, rounds + 1):
        r = json.load(open(f"{d}/{files}-{n}.json"))["results"]
        median = {x["command"].split()[0]: statistics.median(x["times"]) for x in r}
        git, wt = median["git"], median["wtenv"]
        ratios.append(wt / git)
        gits.append(git)
        added.append(wt - git)
        first = r[0]["command"].split()[0]
        print(f"  {files} files, round {n}: git {git*1e3:.1f} ms, wtenv {wt*1e3:.1f} ms, "
              f"ratio {wt/git:.3f}x ({first} first)")
    git = statistics.median(gits)
    print(f"create: {files}-file repository: wtenv create --ports + remove vs git worktree add + remove: "
          f"median ratio {statistics.median(ratios):.3f}x (target <= 1.1x); "
          f"git {git*1e3:.1f} ms, wtenv adds {statistics.median(added)*1e3:.2f} ms")
    if max(gits) > 1.5 * min(gits):
        print(f"warning: git itself ran {min(gits)*1e3:.0f}-{max(gits)*1e3:.0f} ms across rounds: "
              "the machine (its disk) changed speed during the run; the ratio is not reliable")
PY
