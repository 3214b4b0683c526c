#!/usr/bin/env bash
# Runs the escalefs demo on a fresh machine: a relay in a local directory,
# checked with `escalefs relay check`, then two nodes ("laptop" and
# "office") keeping two folders in step through it with `escalefs sync`.
# Everything lives in one temporary directory, removed at the end.
set -euo pipefail
bin=$(realpath "${1:-escalefs}")
work=$(mktemp -d "${TMPDIR:-/tmp}/escalefs-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
relay=file://$work/relay
mkdir -p "$work/relay" "$work/laptop" "$work/office" "$work/state-laptop" "$work/state-office"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { echo "\$ $*"; "$@"; }

say "1. Check the relay (here a local directory; an FTP, WebDAV or Drive URL works alike)"
run "$bin" relay check "$relay"

say "2. Make a repository key (copy it to every node over a channel you trust)"
run "$bin" key generate -o "$work/key"

# Each node keeps its state in its own directory ($XDG_STATE_HOME).
node() {
	local name=$1
	shift
	XDG_STATE_HOME=$work/state-$name "$bin" sync --relay "$relay" --key-file "$work/key" --name "$name" "$@"
}

say "3. laptop writes files and syncs once"
echo "hello from the laptop" >"$work/laptop/hello.txt"
mkdir -p "$work/laptop/photos"
head -c 3000000 /dev/urandom >"$work/laptop/photos/big.jpg"
echo "\$ escalefs sync --once --relay $relay --key-file key --name laptop laptop/"
node laptop --once "$work/laptop"

say "4. office syncs once: the files arrive"
echo "\$ escalefs sync --once --relay $relay --key-file key --name office office/"
node office --once "$work/office"
echo "\$ ls -R office/"
(cd "$work/office" && ls -R)
cmp "$work/laptop/photos/big.jpg" "$work/office/photos/big.jpg"
echo "office/photos/big.jpg is identical to laptop's"

say "5. office deletes a file and renames another; laptop follows"
rm "$work/office/hello.txt"
mv "$work/office/photos" "$work/office/pictures"
node office --once "$work/office"
node laptop --once "$work/laptop"
echo "\$ ls -R laptop/"
(cd "$work/laptop" && ls -R)

say "6. What the relay holds: opaque names, encrypted content"
node office --once "$work/office" 2>/dev/null
(cd "$work/relay" && find . -type f | sort)
echo
echo "The demo is done. Run 'escalefs sync DIR' without --once to keep a folder in step continuously."
