#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Stage "kmod": boots each kernel once in qemu, runs vm-check.sh there, and merges the results into one TAP stream.
#
# usage: [KSFT_NAMES="a b"] check-kmod.sh KSELFTEST_BUILD_DIR [KERNEL_RELEASE]...
# KSFT_NAMES lists the binaries to run (make passes the ones it built, so a stale binary
# of a removed test is not run); without it, every executable in the directory.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
ksft=${1:?usage: check-kmod.sh KSELFTEST_BUILD_DIR [KERNEL_RELEASE]...}
shift
if [ $# -eq 0 ]; then
	echo "ok 1 - kmod # SKIP no kernel with both headers in /lib/modules/*/build and /boot/vmlinuz-*"
	exit 0
fi
out=$top/build/check/kmod
mkdir -p "$out"
# Private logs, so two runs at once (a shared tree) do not write into each other's.
run=$(mktemp -d "$out/run.XXXXXX") || exit 1
trap 'rm -rf "$run"' EXIT
# Per kernel; both boot in parallel. A quiet host needs about 2 min, a loaded one far more.
vm_timeout=${MQTTQ_KMOD_TIMEOUT:-540}

# depmod needs every module of the kernel; read natively here it takes seconds, inside TCG
# over 9p minutes. The guest copies this index next to the module it installs. What the
# index says about mqttq depends only on its aliases, dependencies and symbols, so a
# rebuild that keeps those reuses the index.
depmod_tree() {
	local rel=$1 ko=$top/build/kmod/$1/mqttq.ko root=$top/build/kmod/$1/modroot
	local md=$root/lib/modules/$rel f key
	key=$({
		echo "$rel"
		stat -c '%s %Y' "/lib/modules/$rel/modules.order" "/lib/modules/$rel/modules.dep"
		for f in alias depends softdep; do modinfo -F "$f" "$ko"; done
		nm "$ko" | awk '$2 == "U" || $3 ~ /^__ksymtab_/ { print $2, $3 }'
	} | sha256sum) || return 1
	exec 8>"$root.lock" && flock 8 || return 1
	if [ -f "$md/modules.dep.bin" ] && [ "$(cat "$root/.key" 2>/dev/null)" = "$key" ]; then
		return 0
	fi
	rm -rf "$root" && mkdir -p "$md/updates" || return 1
	ln -s "/lib/modules/$rel/kernel" "$md/kernel"
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		[ -e "/lib/modules/$rel/$f" ] && cp "/lib/modules/$rel/$f" "$md/"
	done
	cp "$ko" "$md/updates/mqttq.ko" && depmod -b "$root" -a "$rel" &&
		grep -q '^updates/mqttq\.ko:' "$md/modules.dep" && echo "$key" >"$root/.key"
}

one_kernel() {
	local rel=$1 t0=$SECONDS
	if [ ! -f "$top/build/kmod/$rel/mqttq.ko" ]; then
		echo "vm: no build/kmod/$rel/mqttq.ko" >"$run/$rel.log"
		echo 126 >"$run/$rel.rc"
		return
	fi
	if ! depmod_tree "$rel" >"$run/$rel.log" 2>&1; then
		echo "vm: depmod of $rel failed" >>"$run/$rel.log"
		echo 126 >"$run/$rel.rc"
		return
	fi
	"$top/tests/vm/run" "$rel" --timeout "$vm_timeout" -- \
		bash "$top/tests/kselftest/vm-check.sh" "$ksft" ${KSFT_NAMES:-} >>"$run/$rel.log" 2>&1
	echo $? >"$run/$rel.rc"
	echo "vm: $rel stage part took $((SECONDS - t0))s" >>"$run/$rel.log"
}

echo "# kmod: kernels $*, logs in ${out#"$top"/}/"
for rel in "$@"; do
	one_kernel "$rel" &
done
wait

n=0
fail=0
for rel in "$@"; do
	echo "# ---- $rel"
	while IFS= read -r line; do
		if [[ "$line" =~ ^(not\ )?ok\ [0-9]+\ -\ (.*)$ ]]; then
			n=$((n + 1))
			[ -n "${BASH_REMATCH[1]}" ] && fail=1
			echo "${BASH_REMATCH[1]}ok $n - $rel: ${BASH_REMATCH[2]}"
		else
			echo "# $line"
		fi
	done <"$run/$rel.log"
	mv -f "$run/$rel.log" "$out/$rel.log"
	rc=$(cat "$run/$rel.rc" 2>/dev/null || echo 126)
	n=$((n + 1))
	case $rc in
	0) echo "ok $n - $rel: vm ran to the end, no kernel warning on the console" ;;
	124) echo "not ok $n - $rel: vm timed out after ${vm_timeout}s"; fail=1 ;;
	125) echo "not ok $n - $rel: kernel reported a problem (see the vm: lines above)"; fail=1 ;;
	126) echo "not ok $n - $rel: vm did not run the tests to their end"; fail=1 ;;
	*) echo "not ok $n - $rel: tests in the vm exited with status $rc"; fail=1 ;;
	esac
done
echo "1..$n"
exit "$fail"
