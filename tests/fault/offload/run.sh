#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Stage "fault-offload": boots the newest installed Debian kernel in qemu and runs fault-vm.sh there (fault matrix on mqttq.ko), as TAP.
#
# usage: run.sh BUILD_DIR   (MQTTQ_FAULT_OFFLOAD_REL picks the kernel, MQTTQ_FAULT_OFFLOAD_N the
# messages per scenario, MQTTQ_FAULT_OFFLOAD_CUT the packet count between cuts, FAULT_JOBS the parallelism)
# Results: BUILD_DIR/tests/fault/offload-results.txt, one line per scenario.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
B=${1:?usage: run.sh BUILD_DIR}
# Under TCG a 400-message row with 6 cuts takes about 4 s; 600 messages and a cut every
# 60th packet of the faulted type give each row about 10 faults (the host stage's
# 2000/300 gives about 7) and keep the 38 rows, two at a time, near 2 minutes.
n=${MQTTQ_FAULT_OFFLOAD_N:-600}
k=${MQTTQ_FAULT_OFFLOAD_CUT:-60}
vm_timeout=${MQTTQ_FAULT_OFFLOAD_VM_TIMEOUT:-420}
log=$B/check/fault-offload-vm.log
results=$B/tests/fault/offload-results.txt

rel=${MQTTQ_FAULT_OFFLOAD_REL:-}
if [ -z "$rel" ]; then
	rel=$(for f in /boot/vmlinuz-*; do
		r=${f#/boot/vmlinuz-}
		[ -e "$f" ] && [ -d "/lib/modules/$r/kernel" ] && echo "$r"
	done | sort -V | tail -n 1)
fi
if [ -z "$rel" ]; then
	echo "1..1"
	echo "ok 1 - fault-offload # SKIP no kernel image with modules in /boot"
	exit 0
fi
ko=$B/kmod/$rel/mqttq.ko
for f in "$ko" "$B"/tests/fault/mqttq-{pubdrv,subdrv,eocheck,faultproxy,freeport}; do
	if [ ! -f "$f" ]; then
		echo "1..1"
		echo "not ok 1 - fault-offload: $f missing (run make)"
		exit 1
	fi
done
command -v mosquitto >/dev/null || { echo "1..1"; echo "not ok 1 - fault-offload: mosquitto not installed"; exit 1; }

mkdir -p "$(dirname "$log")" "$(dirname "$results")"
echo "# fault-offload: kernel $rel, log ${log#"$top"/}"
"$top/tests/vm/run" "$rel" --timeout "$vm_timeout" -- \
	bash "$here/fault-vm.sh" "$B" "$n" "$k" "$ko" "${FAULT_JOBS:-2}" >"$log" 2>&1
vrc=$?
sed -n 's/^offload-result //p' "$log" >"$results"
# The guest's own TAP, kernel console lines left out.
grep -E '^(not )?ok [0-9]+ |^# ' "$log" | grep -v '^# \[' >"$log.tap"
cat "$log.tap"
t=$(grep -Ec '^(not )?ok [0-9]+ ' "$log.tap")
t=$((t + 1))
case $vrc in
0|1) echo "ok $t - fault-offload: VM on $rel ran to the end, no kernel warning on the console" ;;
124) echo "not ok $t - fault-offload: VM on $rel timed out ($vm_timeout s)" ;;
125) echo "not ok $t - fault-offload: kernel $rel logged a warning/Oops (see ${log#"$top"/})" ;;
*) echo "not ok $t - fault-offload: VM on $rel failed with status $vrc (see ${log#"$top"/})" ;;
esac
# The guest's plan line is its last word: without it the guest died before the end.
plan=$(grep -aEo '^1\.\.[0-9]+' "$log" | tail -n 1)
rows=$(wc -l <"$results")
if [ "${plan#1..}" != $((t - 1)) ] || [ "$rows" -lt 1 ]; then
	t=$((t + 1))
	echo "not ok $t - fault-offload: the guest's plan '${plan:-none}' does not match its $((t - 2)) results ($rows scenario rows)"
	vrc=1
fi
echo "# results in $results"
echo "1..$t"
[ "$vrc" -eq 0 ]
