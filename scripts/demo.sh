#!/usr/bin/env bash
# The escalefs demo: two nodes, alice and bob, each with its folder mounted
# by `escalefs mount`, kept in step through a relay in a local directory.
#
#   ./scripts/demo.sh [ESCALEFS]     (make demo builds ./escalefs and runs it)
#
# Everything lives under ./demo in the current directory:
#   demo/relay                  the relay (file://), what the nodes share
#   demo/key                    the repository key
#   demo/alice, demo/bob        the two mountpoints
#   demo/state-alice, -bob      each node's $XDG_STATE_HOME (its files, cache, mount.log)
# A ./demo left by an earlier run is unmounted and removed first. The demo
# unmounts both nodes at the end, and on failure or Ctrl-C. $DEMO_TIMEOUT
# (30 by default) is how many seconds a change may take to reach the other
# node before the demo fails, showing both nodes' mount.log.
set -euo pipefail

bin=${1:-./escalefs}
demo=./demo
demo_abs=$PWD/demo
relay=file://$demo_abs/relay
# How long a change may take to reach the other node.
deadline_s=${DEMO_TIMEOUT:-30}
# How long a mount process may take to exit once unmounted.
exit_s=30

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
say() { printf '\n'; bold "$*"; }
# run prints a command, then runs it.
run() {
	echo "\$ $*"
	"$@"
}
# run_sh prints a shell command line, then runs it with its redirections.
run_sh() {
	echo "\$ $1"
	eval "$1"
}

# 1. Prerequisites: say everything that is missing, then stop.
missing=()
if [[ $bin == */* ]]; then
	[[ -f $bin && -x $bin ]] || missing+=("the escalefs binary: $bin does not exist or is not executable; build it with \`make build\` (or run \`make demo\`, which builds it first)")
else
	command -v "$bin" >/dev/null 2>&1 || missing+=("the escalefs binary: no '$bin' in \$PATH; build it with \`make build\` and run ./scripts/demo.sh ./escalefs (or run \`make demo\`)")
fi
if [[ ! -c /dev/fuse ]]; then
	missing+=("/dev/fuse: the FUSE device does not exist; install fuse3 (apt install fuse3, dnf install fuse3) and load the module (sudo modprobe fuse); in a container, run it with --device /dev/fuse --cap-add SYS_ADMIN")
elif [[ ! -r /dev/fuse || ! -w /dev/fuse ]]; then
	missing+=("/dev/fuse: $(id -un) may not read and write it ($(ls -l /dev/fuse)); it is usually mode 0666 (sudo chmod 0666 /dev/fuse), or run the demo as root")
fi
fusermount=
for f in fusermount fusermount3; do
	if command -v "$f" >/dev/null 2>&1; then
		fusermount=$f
		break
	fi
done
if [[ -z $fusermount && $(id -u) -ne 0 ]]; then
	missing+=("fusermount3 (or fusermount): not in \$PATH; a user who is not root mounts and unmounts with it: install fuse3 (sudo apt install fuse3, sudo dnf install fuse3)")
fi
if ((${#missing[@]} > 0)); then
	echo "demo: cannot run; missing:" >&2
	for m in "${missing[@]}"; do
		echo "  - $m" >&2
	done
	exit 1
fi

# is_mounted DIR: DIR is a mountpoint (as /proc/self/mountinfo spells it).
is_mounted() {
	local dir
	dir=$(realpath -m "$1")
	dir=${dir// /\\040}
	awk -v d="$dir" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# unmount DIR: fusermount -u, or umount when root has no fusermount.
unmount() {
	if [[ -n $fusermount ]]; then
		run "$fusermount" -u "$1"
	else
		run umount "$1"
	fi
}

# unmount_quietly DIR: unmount DIR if it is mounted, lazily if it is busy.
unmount_quietly() {
	is_mounted "$1" || return 0
	if [[ -n $fusermount ]]; then
		"$fusermount" -u "$1" 2>/dev/null || "$fusermount" -u -z "$1" 2>/dev/null || true
	else
		umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
	fi
}

# mount_pid NODE: the process ID in NODE's mount.pid, if any.
mount_pid() {
	local f
	f=$(find "$demo/state-$1" -name mount.pid 2>/dev/null | head -n 1)
	if [[ -n $f ]]; then
		cat "$f" 2>/dev/null || true
	fi
}

# running PID: PID is a live process (not a zombie).
running() {
	[[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 1
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# seconds MS: MS milliseconds as seconds with one decimal.
seconds() { printf '%d.%ds' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# show_logs: the tail of both nodes' mount.log.
show_logs() {
	local n log
	for n in alice bob; do
		log=$(find "$demo/state-$n" -name mount.log 2>/dev/null | head -n 1)
		if [[ -n $log ]]; then
			echo "--- the last lines of $log" >&2
			tail -n 25 "$log" >&2
		else
			echo "--- $n has no mount.log under $demo/state-$n" >&2
		fi
	done
}

fail() {
	echo "demo: $*" >&2
	show_logs
	exit 1
}

# wait_until WHAT TEST...: poll TEST until it succeeds, for at most
# $deadline_s seconds, then print how long it took; fail on timeout.
wait_until() {
	local what=$1 start elapsed
	shift
	start=$(now_ms)
	until "$@"; do
		elapsed=$(($(now_ms) - start))
		if ((elapsed > deadline_s * 1000)); then
			fail "timed out after ${deadline_s}s waiting until $what"
		fi
		sleep 0.1
	done
	echo "$what after $(seconds $(($(now_ms) - start)))"
}

# wait_exit PID: wait until PID has exited, for at most $exit_s seconds.
wait_exit() {
	local start
	start=$(now_ms)
	while running "$1"; do
		if (($(now_ms) - start > exit_s * 1000)); then
			return 1
		fi
		sleep 0.1
	done
}

# stop_node NODE: unmount NODE and wait for its mount process to exit.
stop_node() {
	local n=$1 pid
	pid=$(mount_pid "$n")
	unmount "$demo/$n"
	if ! wait_exit "$pid"; then
		fail "$n's escalefs mount (pid $pid) did not exit within ${exit_s}s of the unmount"
	fi
	echo "$n's escalefs mount${pid:+ (pid $pid)} has exited"
}

finished=
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [[ -z $finished ]]; then
		local n pid pids=()
		for n in alice bob; do
			pids+=("$(mount_pid "$n")")
			unmount_quietly "$demo/$n"
		done
		for pid in "${pids[@]}"; do
			wait_exit "$pid" || echo "demo: escalefs mount (pid $pid) is still running" >&2
		done
		echo "demo: stopped; unmounted $demo/alice and $demo/bob" >&2
	fi
	exit "$status"
}

# A ./demo from an earlier run: unmount what is still mounted there, and
# start afresh.
if [[ -e $demo ]]; then
	for n in alice bob; do
		if is_mounted "$demo/$n"; then
			echo "unmounting $demo/$n, left mounted by an earlier run"
			pid=$(mount_pid "$n")
			unmount_quietly "$demo/$n"
			wait_exit "$pid" || echo "demo: the earlier escalefs mount of $demo/$n (pid $pid) is still running" >&2
		fi
		if is_mounted "$demo/$n"; then
			fail "$demo/$n is still mounted; unmount it (${fusermount:-umount} -u $demo/$n) and run the demo again"
		fi
	done
	rm -rf "$demo"
fi
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$demo/relay" "$demo/alice" "$demo/bob" "$demo/state-alice" "$demo/state-bob"

say "1. Make a repository key (copy it to every node over a channel you trust)"
run "$bin" key generate -o "$demo/key"

# node NODE COMMAND...: runs escalefs COMMAND as NODE, with NODE's own
# state directory.
node() {
	local n=$1
	shift
	run env XDG_STATE_HOME="$demo_abs/state-$n" "$bin" "$@"
}

say "2. Mount alice's folder: escalefs mount returns once the mount is ready and serves in the background"
node alice mount --relay "$relay" --key-file "$demo/key" --name alice --refresh 1s "$demo/alice"

say "3. Mount bob's folder, through the same relay with the same key"
node bob mount --relay "$relay" --key-file "$demo/key" --name bob --refresh 1s "$demo/bob"

say "4. alice writes files in her mount"
run_sh "echo 'hello from alice' > $demo/alice/hello.txt"
run mkdir "$demo/alice/photos"
run_sh "head -c 3000000 /dev/urandom > $demo/alice/photos/big.jpg"

same_in_bob() {
	cmp -s "$demo/alice/hello.txt" "$demo/bob/hello.txt" &&
		cmp -s "$demo/alice/photos/big.jpg" "$demo/bob/photos/big.jpg"
}
say "5. They arrive in bob's mount"
wait_until "hello.txt and photos/big.jpg arrived in bob's mount" same_in_bob
run ls -lR "$demo/bob"
run cat "$demo/bob/hello.txt"
run cmp "$demo/alice/photos/big.jpg" "$demo/bob/photos/big.jpg"
echo "bob's photos/big.jpg is identical to alice's"

gone_from_alice() { [[ ! -e $demo/alice/hello.txt ]]; }
say "6. bob deletes hello.txt; the deletion reaches alice"
run rm "$demo/bob/hello.txt"
wait_until "the deletion of hello.txt reached alice's mount" gone_from_alice
run ls -lR "$demo/alice"

say "7. alice protects photos/big.jpg (access modifier w-: pulled versions never overwrite it)"
run chmod a-w "$demo/alice/photos/big.jpg"
run ls -l "$demo/alice/photos/big.jpg"
node alice access "$demo/alice/photos/big.jpg"

say "8. What the relay holds: opaque names, encrypted content"
run_sh "find $demo/relay -type f | sort"
if grep -rqF 'hello from alice' "$demo/relay"; then
	fail "the relay holds 'hello from alice' in the clear"
fi
echo "(no file on the relay contains 'hello from alice'; what stays there are each node's"
echo " encrypted log and snapshots: a file's content leaves the relay once every node has it)"

say "9. Unmount both: each escalefs mount pushes what it has queued and exits"
stop_node alice
stop_node bob
finished=1

say "The demo is done. Where things are:"
printf '  %-18s %s\n' "$demo/relay" "the relay both nodes share ($relay)" \
	"$demo/key" "the repository key" \
	"$demo/alice" "alice's mountpoint (empty now that it is unmounted)" \
	"$demo/bob" "bob's mountpoint"
for n in alice bob; do
	log=$(find "$demo/state-$n" -name mount.log | head -n 1)
	printf '  %-18s %s\n' "$demo/state-$n" "$n's \$XDG_STATE_HOME: its files under escalefs/*/files, its log ${log:-(none)}"
done
echo
echo "Mount again with: XDG_STATE_HOME=$demo_abs/state-alice $bin mount --relay $relay --key-file $demo/key --name alice $demo/alice"
if [[ -n $fusermount ]]; then
	echo "and unmount with: $fusermount -u $demo/alice"
else
	echo "and unmount with: umount $demo/alice"
fi
