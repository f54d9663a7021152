#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# make soak-fault-offload: boots the newest kernel in qemu and runs soak-vm.sh there (random faults, offload engine); long, so not part of make check.
#
# usage: soak.sh BUILD_DIR   (SOAK_N, SOAK_RATE, SOAK_SEED, SOAK_V; MQTTQ_FAULT_OFFLOAD_REL picks the kernel)
# Prints soak.sh's result lines; the VM's console log is BUILD_DIR/check/soak-fault-offload-vm.log.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
B=${1:?usage: soak.sh BUILD_DIR}
n=${SOAK_N:-1000000}
log=$B/check/soak-fault-offload-vm.log
rel=${MQTTQ_FAULT_OFFLOAD_REL:-$(for f in /boot/vmlinuz-*; do
	r=${f#/boot/vmlinuz-}
	[ -e "$f" ] && [ -d "/lib/modules/$r/kernel" ] && echo "$r"
done | sort -V | tail -n 1)}
[ -n "$rel" ] || { echo "soak-fault-offload: no kernel image with modules in /boot" >&2; exit 2; }
envs=(--env "SOAK_N=$n")
for v in SOAK_RATE SOAK_SEED SOAK_V; do [ -n "${!v:-}" ] && envs+=(--env "$v=${!v}"); done
# soak.sh allows each QoS n/200 + 120 s; three of them plus boot.
mkdir -p "$(dirname "$log")"
"$top/tests/vm/run" "$rel" --timeout $((3 * (n / 200 + 140) + 60)) "${envs[@]}" -- \
	bash "$here/soak-vm.sh" "$B" "$B/kmod/$rel/mqttq.ko" >"$log" 2>&1
rc=$?
grep -aE '^(soak|result|check|pub) ' "$log" | grep -a -v '^soak: ' ; grep -a '^soak' "$log"
[ $rc -eq 125 ] && echo "soak-fault-offload: kernel $rel logged a warning/Oops (see $log)"
echo "soak-fault-offload: VM status $rc, log $log"
exit $rc
