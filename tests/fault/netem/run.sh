#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Stage "netem": boots the newest installed Debian kernel in qemu and runs netem-vm.sh there (lossy veth between namespaces), as TAP.
#
# usage: run.sh BUILD_DIR   (MQTTQ_NETEM_REL picks the kernel, MQTTQ_NETEM_N the messages per run)
# With build/kmod/<rel>/mqttq.ko the runs are repeated on the offload engine.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
B=${1:?usage: run.sh BUILD_DIR}
n=${MQTTQ_NETEM_N:-2000}
log=$B/check/netem-vm.log

# One kernel keeps the stage short; the newest is the one deployments run.
rel=${MQTTQ_NETEM_REL:-}
if [ -z "$rel" ]; then
	rel=$(for f in /boot/vmlinuz-*; do
		r=${f#/boot/vmlinuz-}
		[ -e "$f" ] && [ -d "/lib/modules/$r/kernel" ] && echo "$r"
	done | sort -V | tail -n 1)
fi
if [ -z "$rel" ]; then
	echo "1..1"
	echo "ok 1 - netem # SKIP no kernel image with modules in /boot"
	exit 0
fi
for b in mqttq-pubdrv mqttq-subdrv mqttq-eocheck; do
	if [ ! -x "$B/tests/fault/$b" ]; then
		echo "1..1"
		echo "not ok 1 - netem: $B/tests/fault/$b missing (run make)"
		exit 1
	fi
done

# The offload engine runs too when this kernel's module was built.
ko=$B/kmod/$rel/mqttq.ko
[ -f "$ko" ] || ko=
want=$([ -n "$ko" ] && echo 13 || echo 7)

mkdir -p "$(dirname "$log")"
echo "# netem: kernel $rel, log ${log#"$top"/}"
"$top/tests/vm/run" "$rel" --timeout 300 -- bash "$here/netem-vm.sh" "$B" "$n" "$ko" >"$log" 2>&1
vrc=$?
# The guest's own TAP, kernel console lines left out.
grep -E '^(not )?ok [0-9]+ |^# |^1\.\.' "$log" | grep -v '^# \[' | grep -v '^1\.\.' >"$log.tap"
cat "$log.tap"
t=$(grep -Ec '^(not )?ok [0-9]+ ' "$log.tap")
t=$((t + 1))
case $vrc in
0|1) echo "ok $t - netem: VM on $rel ran to the end, no kernel warning on the console" ;;
124) echo "not ok $t - netem: VM on $rel timed out (300 s)" ;;
125) echo "not ok $t - netem: kernel $rel logged a warning/Oops (see ${log#"$top"/})" ;;
*) echo "not ok $t - netem: VM on $rel failed with status $vrc (see ${log#"$top"/})" ;;
esac
echo "1..$t"
[ "$vrc" -eq 0 ] || exit 1
[ "$t" -gt "$want" ] || {
	echo "not ok $((t + 1)) - netem: the guest reported $((t - 1)) results, not $want"
	exit 1
}
