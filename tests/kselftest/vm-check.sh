#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM: installs the fresh mqttq.ko, loads it, runs every kselftest binary, unloads, scans dmesg.
#
# usage (from tests/vm/run): vm-check.sh KSELFTEST_BUILD_DIR [NAME]...
# Runs the named binaries of that directory, or all of its executables.
# Prints "ok - name" / "not ok - name" lines; check-kmod.sh numbers them.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
ksft=${1:?usage: vm-check.sh KSELFTEST_BUILD_DIR [NAME]...}
shift
if [ $# -gt 0 ]; then
	bins=()
	for n in "$@"; do bins+=("$ksft/$n"); done
else
	bins=("$ksft"/*)
fi
rel=$(uname -r)
md=/lib/modules/$rel
ko=$top/build/kmod/$rel/mqttq.ko
index=$top/build/kmod/$rel/modroot/lib/modules/$rel
rc_all=0

tap() {
	if [ "$1" -eq 0 ]; then
		echo "ok 0 - $2"
	else
		echo "not ok 0 - $2"
		rc_all=1
	fi
}

loaded() { grep -q '^mqttq ' /proc/modules; }

# Boot messages are not ours to judge; the scan at the end covers what the tests caused.
dmesg -C

install -D -m 0644 "$ko" "$md/updates/mqttq.ko" && cp "$index"/modules.* "$md/"
tap $? "install mqttq.ko into $md/updates with its depmod index"
modprobe mqttq
tap $? "modprobe mqttq"
want=$(modinfo -F srcversion "$ko")
[ -n "$want" ] && [ "$(cat /sys/module/mqttq/srcversion 2>/dev/null)" = "$want" ]
tap $? "the loaded mqttq is the fresh build (srcversion $want)"

for bin in "${bins[@]}"; do
	name=${bin##*/}
	if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
		[ $# -gt 0 ] && tap 1 "$name: binary $bin missing"
		continue
	fi
	# Each binary starts from the load-time defaults, whatever the one before it wrote.
	{ ! loaded || modprobe -r mqttq; } && modprobe mqttq
	tap $? "$name: mqttq freshly loaded"
	echo "# kselftest $name"
	log=$(mktemp)
	# The harness bounds each test (30 s by default); this bounds a binary that wedges outside one.
	bin_timeout=${MQTTQ_KSFT_BIN_TIMEOUT:-400}
	# Result lines get the binary's name; a SKIP line, which carries no test name in the
	# 6.1 harness, gets the one from the last RUN line.
	timeout -k 5 "$bin_timeout" "$bin" </dev/null 2>&1 | awk -v bin="$name" '
		/^#  RUN / { cur = $3 }
		match($0, /^(not )?ok [0-9]+ /) {
			rest = substr($0, RLENGTH + 1)
			if (rest ~ /^# SKIP/)
				rest = cur " " rest
			print substr($0, 1, RLENGTH) "- " bin ": " rest
			fflush()
			next
		}
		{ print; fflush() }' | tee "$log"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ]; then
		rc_all=1
		grep -q '^not ok ' "$log" || tap 1 "$name exited with status $rc"
	elif ! grep -Eq '^ok [0-9]+ - ' "$log"; then
		tap 1 "$name reported no test"
	fi
	rm -f "$log"
done

loaded || modprobe mqttq
modprobe -r mqttq
tap $? "modprobe -r mqttq after the tests"
! loaded
tap $? "mqttq is gone from /proc/modules"

hits=$(dmesg | grep -E 'BUG:|WARNING:|Oops|possible recursive locking|circular locking|kmemleak|general protection')
if [ -n "$hits" ]; then
	printf '# dmesg: %s\n' "${hits//$'\n'/$'\n'# dmesg: }"
	tap 1 "dmesg has no BUG/WARNING/Oops/lockdep/kmemleak/GPF report"
else
	tap 0 "dmesg has no BUG/WARNING/Oops/lockdep/kmemleak/GPF report"
fi
exit "$rc_all"
