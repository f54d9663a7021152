#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Stage "outbox-offload": boots each Debian kernel in qemu and runs vm.sh there (SIGKILLed publisher, outbox, offload engine), TAP out.
set -uo pipefail

top=$(cd "$(dirname "$0")/../../.." && pwd)
B=${1:?usage: check.sh BUILD_DIR [KERNEL_RELEASE]...}
shift
log=$(mktemp /tmp/mqttq-obo.XXXXXX)
trap 'rm -f "$log"' EXIT
n=0 fails=0 rels=0
for rel in "$@"; do
	[ -f "$B/kmod/$rel/mqttq.ko" ] && [ -e "/boot/vmlinuz-$rel" ] || continue
	rels=$((rels + 1))
	# A VM that fails to boot under TCG (not our test failing) gets one more try.
	for attempt in 1 2; do
		timeout 900 "$top/tests/vm/run" "$rel" --timeout 800 -- \
			bash "$top/tests/fault/outbox-offload/vm.sh" "$B" >"$log" 2>&1
		rc=$?
		grep -q '^1\.\.[0-9]' "$log" && break
		echo "# vm attempt $attempt on $rel ended with $rc before the tests finished"
	done
	echo "# kernel $rel"
	grep '^#' "$log"
	while read -r line; do
		case $line in
		"ok "*) n=$((n + 1)); echo "ok $n - $rel: ${line#* - }" ;;
		"not ok "*) n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $rel: ${line#* - }" ;;
		esac
	done < <(grep -E '^(ok|not ok) ' "$log")
	if ! grep -q '^1\.\.[0-9]' "$log" || [ $rc -ne 0 ]; then
		n=$((n + 1)) fails=$((fails + 1))
		echo "not ok $n - $rel: vm run ended with $rc"
		tail -20 "$log" | sed 's/^/# /'
	fi
done
if [ $rels -eq 0 ]; then
	echo "ok 1 - outbox on the offload engine # SKIP no kernel with a built mqttq.ko and an image"
	echo "1..1"
	exit 0
fi
echo "1..$n"
[ $fails -eq 0 ]
