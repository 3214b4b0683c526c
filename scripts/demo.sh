#!/usr/bin/env bash
# Runs the escalefs demo: a relay in a fresh local directory, checked end to
# end with `escalefs relay check`.
set -euo pipefail
bin=${1:-escalefs}
relay=$(mktemp -d "${TMPDIR:-/tmp}/escalefs-demo-relay.XXXXXX")
trap 'rm -rf "$relay"' EXIT
echo "\$ escalefs relay check file://$relay"
"$bin" relay check "file://$relay"
