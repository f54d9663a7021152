#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Runs a publisher, SIGKILLs it KILLS times at seeded random points, then lets a last run finish (scenario.sh --pub wrapper).
#
#   crashloop.sh KILLS SEED MIN_MS MAX_MS CMD...
#
# Each run is the same CMD (same client id, outbox and progress file), so a
# restart must resume what the killed one had accepted. Exit status and
# stdout are the last run's; stderr says where each kill hit.
set -uo pipefail

[ $# -ge 5 ] || { echo "usage: $0 KILLS SEED MIN_MS MAX_MS CMD..." >&2; exit 2; }
kills=$1 seed=$2 lo=$3 hi=$4
shift 4
RANDOM=$seed
for ((k = 1; k <= kills; k++)); do
	ms=$((lo + RANDOM % (hi - lo + 1)))
	"$@" >/dev/null &
	pid=$!
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	if ! kill -0 $pid 2>/dev/null; then
		# Finished (or failed) before the kill: that run's verdict stands.
		wait $pid
		rc=$?
		echo "crashloop: run $k ended by itself (exit $rc) before ${ms} ms" >&2
		[ $rc -eq 0 ] && break
		exit $rc
	fi
	kill -KILL $pid
	wait $pid 2>/dev/null
	echo "crashloop: run $k killed (SIGKILL) after ${ms} ms" >&2
done
exec "$@"
