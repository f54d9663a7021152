#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Stage "offload": boots one Debian kernel in qemu and runs offload-vm.sh there (libmqttq through mqttq.ko), TAP out.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:?usage: check-offload.sh BUILD_DIR [KERNEL_RELEASE]...}
shift
rel=
for r in "$@"; do
	[ -f "$B/kmod/$r/mqttq.ko" ] && [ -e "/boot/vmlinuz-$r" ] && { rel=$r; break; }
done
if [ -z "$rel" ]; then
	echo "ok 1 - offload engine in the VM # SKIP no kernel with a built mqttq.ko and an image"
	exit 0
fi
log=$(mktemp /tmp/mqttq-offload.XXXXXX)
trap 'rm -f "$log"' EXIT
# A VM that fails to boot under TCG (not our test failing) gets one more try.
for attempt in 1 2; do
	timeout 700 "$top/tests/vm/run" "$rel" --timeout 600 -- bash "$top/tests/integration/offload-vm.sh" "$B" \
		>"$log" 2>&1
	rc=$?
	grep -q '^1\.\.[0-9]' "$log" && break
	echo "# vm attempt $attempt on $rel ended with $rc before the tests finished"
done
echo "# kernel $rel"
grep -E '^(ok|not ok|#|1\.\.)' "$log"
[ $rc -eq 0 ]
