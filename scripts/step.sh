#!/usr/bin/env bash
# Runs one step of `make check` and prints how long it took, so a slow CI
# run says where its wall time went (README.md, "Tests"):
#
#   scripts/step.sh NAME COMMAND [ARG...]
#
# The exit status is COMMAND's.
set -uo pipefail
name=${1:?usage: scripts/step.sh NAME COMMAND [ARG...]}
shift
start=$(date +%s)
"$@"
status=$?
echo "step $name: $(($(date +%s) - start)) s" >&2
exit $status
