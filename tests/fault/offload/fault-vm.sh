#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Runs inside the test VM: inserts mqttq.ko, then the fault scenario matrix of ../lib.sh with publisher and subscriber on the offload engine, as TAP.
#
# usage: fault-vm.sh BUILD_DIR N CUTN MQTTQ_KO [JOBS]
# Besides TAP, one "offload-result ..." line per scenario for the host's results file:
# the VM sees the host read-only, so everything else is written under /tmp.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fault=$(cd "$here/.." && pwd)
B=${1:?usage: fault-vm.sh BUILD_DIR N CUTN MQTTQ_KO [JOBS]}
n=${2:?} k=${3:?} ko=${4:?} jobs_max=${5:-2}
export B TMPDIR=/tmp
bin=$B/tests/fault
sysfs=/sys/kernel/mqttq
tmp=$(mktemp -d /tmp/mqttq-fault-offload.XXXXXX)
# shellcheck source=../lib.sh
. "$fault/lib.sh"

t=0 rc=0
ok() { t=$((t + 1)); echo "ok $t - $*"; }
not_ok() { t=$((t + 1)); echo "not ok $t - $*"; rc=1; }
bail() { not_ok "$*"; echo "1..$t"; exit 1; }

# -d makes the drivers print the library's info log, which names the engine of every
# connection: how each row proves it ran in the module (rows run two at a time, so the
# global counters cannot tell rows apart).
PUB="$bin/mqttq-pubdrv -d -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json"
SUB="$bin/mqttq-subdrv -d -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 300 -o @OUT@ --ready @READY@ -W @TIMEOUT@"
# Under TCG a healthy row takes a few seconds; a hung one must not eat the VM's budget.
timeout=${MQTTQ_FAULT_OFFLOAD_TIMEOUT:-40}
attached='offload engine: session runs in mqttq.ko'

echo "# fault-offload: kernel $(uname -r), $n messages per scenario, a cut every ${k}th packet, $jobs_max at a time"
insmod "$ko" || bail "insmod $ko"
ok "insmod $ko"
# MQTTQ_OFFLOAD=on: a connection the module cannot take fails instead of falling back.
export MQTTQ_OFFLOAD=on
stat() { cat "$sysfs/$1" 2>/dev/null || echo '?'; }
acks0=$(stat acks_in_kernel)

nsc=0
declare -a SC_NAME SC_QOS SC_VER
scenario() { # scenario LIB NAME QOS VERSION N [scenario.sh args...] (LIB is the matrix's, ignored)
	local name=$2 qos=$3 ver=$4 rn=$5 i=$nsc
	shift 5
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
	SC_NAME[i]=$name SC_QOS[i]=$qos SC_VER[i]=$ver
	(
		bash "$fault/scenario.sh" --pub "$PUB" --sub "$SUB" --qos "$qos" -V "$ver" -n "$rn" \
			--timeout "$timeout" --name "mqttq-offload/$name" --keep "$@" >"$tmp/sc.$i.out" 2>&1
		echo $? >"$tmp/sc.$i.rc"
		wd=$(sed -n 's/^scenario: kept //p' "$tmp/sc.$i.out")
		for r in pub sub; do
			echo "$(grep -c "$attached" "$wd/$r.log" 2>/dev/null) $(grep -c 'userspace engine' "$wd/$r.log" 2>/dev/null)" \
				>"$tmp/sc.$i.$r"
			grep 'lib: ' "$wd/$r.log" 2>/dev/null | tail -n 5 >"$tmp/sc.$i.$r.log"
		done
		[ -n "$wd" ] && rm -rf "$wd"
	) &
	nsc=$((nsc + 1))
}

report() { # report INDEX
	local i=$1 name=${SC_NAME[$1]} qos=${SC_QOS[$1]} ver=${SC_VER[$1]}
	local rc res pubjson why pa pu sa su what
	rc=$(cat "$tmp/sc.$i.rc" 2>/dev/null || echo 2)
	res=$(grep -m1 '^result ' "$tmp/sc.$i.out")
	pubjson=$(grep -m1 '^pub ' "$tmp/sc.$i.out")
	read -r pa pu <"$tmp/sc.$i.pub"
	read -r sa su <"$tmp/sc.$i.sub"
	echo "offload-result lib=mqttq-offload ${res#result } rc=$rc offload_attach_pub=$pa offload_attach_sub=$sa userspace_pub=$pu userspace_sub=$su"
	what="mqttq-offload $name qos$qos v$ver"
	# Every connection either side made must have been taken by the module.
	if [ "${pa:-0}" -lt 1 ] || [ "${sa:-0}" -lt 1 ] || [ "${pu:-1}" -ne 0 ] || [ "${su:-1}" -ne 0 ]; then
		not_ok "$what: not on the offload engine (offload attaches pub=$pa sub=$sa, userspace pub=$pu sub=$su)"
		sed 's/^/# /' "$tmp/sc.$i.out" "$tmp/sc.$i.pub.log" "$tmp/sc.$i.sub.log"
		return
	fi
	res="${res#result name=* } attaches=$pa+$sa"
	if [ "$rc" -eq 0 ]; then
		ok "$what: $res"
	elif [ "$rc" -eq 1 ] && why=$(fault_known_bug mqttq "$res" "$pubjson"); then
		ok "$what # SKIP known peer bug: $why ($res)"
	else
		not_ok "$what: $res"
		sed 's/^/# /' "$tmp/sc.$i.out" "$tmp/sc.$i.pub.log" "$tmp/sc.$i.sub.log"
	fi
}

matrix mqttq "$n" "$k" full
wait
for ((i = 0; i < nsc; i++)); do report "$i"; done

acks=$(stat acks_in_kernel)
if [ "$acks" != '?' ] && [ "$acks" -gt "$acks0" ]; then
	ok "the module handled $((acks - acks0)) acks in the kernel during the matrix"
else
	not_ok "the module handled acks in the kernel during the matrix (acks_in_kernel $acks0 -> $acks)"
fi
# A dropped connection's session lingers linger_s for a resume; clean exits end theirs
# at once. Wait out the linger, bounded, and say how long it took.
linger=$(cat /sys/module/mqttq/parameters/linger_s 2>/dev/null || echo 30)
for ((i = 0; i < (linger + 10) * 10; i++)); do
	[ "$(stat sessions) $(stat inflight) $(stat bytes_held)" = "0 0 0" ] && break
	sleep 0.1
done
left="sessions=$(stat sessions) inflight=$(stat inflight) bytes_held=$(stat bytes_held)"
if [ "$left" = "sessions=0 inflight=0 bytes_held=0" ]; then
	ok "no kernel state left after the clients exited ($left after $((i / 10)).$((i % 10)) s, linger_s=$linger)"
else
	not_ok "no kernel state left after the clients exited ($left after $((linger + 10)) s, linger_s=$linger)"
fi
echo "# counters: $(for f in "$sysfs"/*; do printf '%s=%s ' "${f##*/}" "$(cat "$f")"; done)"
if rmmod mqttq; then ok "rmmod mqttq"; else not_ok "rmmod mqttq"; fi
rm -rf "$tmp"
echo "1..$t"
exit $rc
