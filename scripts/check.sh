#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Runs the build and then each test stage, timing each and summing their TAP into one line.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/check"
mkdir -p "$out"
: >"$out/summary.txt"

# ONLY=a,b restricts the run to those stages (for developers; CI runs all).
only=",${ONLY:-},"
tot_pass=0 tot_fail=0 tot_skip=0
t_all=$(date +%s)

run_stage() {
	local name=$1
	shift
	local log="$out/$name.log" t0 t1 rc pass fail skip
	echo "=== stage $name: $*"
	t0=$(date +%s)
	"$@" </dev/null 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	t1=$(date +%s)
	# TAP top-level results only; kselftest nests its details behind "# ".
	pass=$(grep -Ec '^ok [0-9]+' "$log" || true)
	skip=$(grep -Ec '^ok [0-9]+.*# *(SKIP|skip)' "$log" || true)
	fail=$(grep -Ec '^not ok [0-9]+' "$log" || true)
	pass=$((pass - skip))
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		# A stage that died without saying which test broke still fails.
		fail=1
		echo "not ok - stage $name exited with status $rc" | tee -a "$log"
	fi
	if [ "$rc" -eq 0 ] && [ $((pass + fail + skip)) -eq 0 ] && [ "$name" != build ]; then
		fail=1
		echo "not ok - stage $name ran no test" | tee -a "$log"
	fi
	tot_pass=$((tot_pass + pass)) tot_fail=$((tot_fail + fail)) tot_skip=$((tot_skip + skip))
	printf '%-14s %5ss  %4d passed, %d failed, %d skipped\n' \
		"$name" $((t1 - t0)) "$pass" "$fail" "$skip" >>"$out/summary.txt"
}

if [ "$only" = ",," ] || [[ "$only" == *,build,* ]]; then
	run_stage build make -C "$top" --no-print-directory -j"$(nproc)" all
fi
for s in "$@"; do
	if [ "$only" != ",," ] && [[ "$only" != *,"$s",* ]]; then
		continue
	fi
	run_stage "$s" make -C "$top" --no-print-directory "check-$s"
done

echo
echo "=== time per stage"
cat "$out/summary.txt"
echo "total          $(($(date +%s) - t_all))s"
echo
echo "$tot_pass passed, $tot_fail failed, $tot_skip skipped"
[ "$tot_fail" -eq 0 ]
