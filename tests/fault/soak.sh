#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# make soak-fault: SOAK_N messages per QoS through seeded random faults; long, so not part of make check.
#
# SOAK_N (default 10^6), SOAK_RATE (fault probability per packet), SOAK_SEED (default: random,
# printed), SOAK_LIB=mosq|paho or SOAK_PUB/SOAK_SUB command templates (see scenario.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
n=${SOAK_N:-1000000}
rate=${SOAK_RATE:-0.0002}
seed=${SOAK_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
lib=${SOAK_LIB:-mosq}
peers=${B:?B must name the build directory}/tests/peers
pub=${SOAK_PUB:-$peers/peer-$lib-pub -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json}
sub=${SOAK_SUB:-$peers/peer-$lib-sub -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 1000 -o @OUT@ --ready @READY@ -W @TIMEOUT@}
# Generous: the slowest peer library manages a few hundred messages a second under faults.
timeout=$((n / 200 + 120))
echo "soak: n=$n rate=$rate seed=$seed lib=${SOAK_PUB:+custom}${SOAK_PUB:-$lib} timeout=${timeout}s per QoS"
fail=0
for qos in 0 1 2; do
	bash "$here/scenario.sh" --pub "$pub" --sub "$sub" --qos "$qos" -n "$n" -V "${SOAK_V:-311}" \
		--seed $((seed + qos)) --rate "$rate" --timeout "$timeout" --grace 10 \
		--name "soak-q$qos" || fail=1
done
exit $fail
