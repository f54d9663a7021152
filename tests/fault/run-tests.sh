#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Stage "fault": framing unit test, checker and proxy CLI tests, then fault scenarios against a real mosquitto, as TAP.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export B=${B:-$top/build}
bin=$B/tests/fault
peers=$B/tests/peers
results=$bin/results.txt
# The scenario matrix and the known-bug rules, shared with the offload stage in the VM.
# shellcheck source=lib.sh
. "$here/lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mqttq-fault-tests.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

t=0 nfail=0
ok() { t=$((t + 1)); echo "ok $t - $1"; }
not_ok() { t=$((t + 1)); nfail=$((nfail + 1)); echo "not ok $t - $1"; }
check() { # check NAME CMD...: passes when CMD exits 0
	local name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then ok "$name"; else not_ok "$name"; sed 's/^/# /' "$tmp/out"; fi
}
rc_is() { # rc_is WANT CMD...
	local want=$1 rc
	shift
	"$@" >"$tmp/rc.out" 2>&1
	rc=$?
	[ $rc -eq "$want" ] || { echo "exit $rc, wanted $want"; cat "$tmp/rc.out"; return 1; }
}

# --- C tests, renumbered into this stage's TAP: the framing parser, and the
# proxy's faults on the wire between a fake client and a fake broker.
ctest() { # ctest PREFIX CMD...
	local prefix=$1 rc line
	shift
	timeout -k 2 60 "$@" >"$tmp/ctest" 2>&1
	rc=$?
	while read -r line; do
		case $line in
		"ok "*) ok "$prefix: ${line#* - }" ;;
		"not ok "*) not_ok "$prefix: ${line#* - }" ;;
		esac
	done <"$tmp/ctest"
	[ $rc -eq 0 ] || { not_ok "$prefix: $1 exited $rc"; sed 's/^/# /' "$tmp/ctest"; }
}
ctest frame "$bin/test-frame"
ctest wire "$bin/test-proxy" "$bin/mqttq-faultproxy"

# --- exactly-once checker on synthetic logs
eo=$bin/mqttq-eocheck
rec() { for s in "$@"; do echo "t/x seq=$s qos=$Q run=k ......"; done; }
Q=2 rec 0 1 2 3 >"$tmp/q2ok"
Q=2 rec 0 1 1 2 3 >"$tmp/q2dup"
Q=2 rec 0 2 3 >"$tmp/q2lost"
Q=1 rec 0 2 1 1 3 >"$tmp/q1dup"
Q=1 rec 0 1 3 >"$tmp/q1lost"
Q=0 rec 0 3 >"$tmp/q0lost"
Q=0 rec 0 0 1 2 3 >"$tmp/q0dup"
Q=2 rec 0 1 2 3 9 >"$tmp/q2extra"
check "eocheck: QoS 2 all delivered once passes" rc_is 0 "$eo" -e 2:4:k "$tmp/q2ok"
check "eocheck: QoS 2 duplicate fails" rc_is 1 "$eo" -e 2:4:k "$tmp/q2dup"
check "eocheck: QoS 2 loss fails" rc_is 1 "$eo" -e 2:4:k "$tmp/q2lost"
check "eocheck: QoS 1 duplicate and reordering pass" rc_is 0 "$eo" -e 1:4:k "$tmp/q1dup"
check "eocheck: QoS 1 loss fails" rc_is 1 "$eo" -e 1:4:k "$tmp/q1lost"
check "eocheck: QoS 0 loss passes" rc_is 0 "$eo" -e 0:4:k "$tmp/q0lost"
check "eocheck: QoS 0 duplicate fails" rc_is 1 "$eo" -e 0:4:k "$tmp/q0dup"
check "eocheck: a message never sent fails" rc_is 1 "$eo" -e 2:4:k "$tmp/q2extra"
json=$("$eo" --json -e 1:4:k "$tmp/q1dup")
check "eocheck: JSON counts sent/received/dup/reordered" \
	grep -q '"qos":1,"sent":4,"received":5,"unique":4,"lost":0,"dup":1,"reordered":1' <<<"$json"
printf 'seq=1 qos=2 run=k\nseq=3 qos=2 run=k\n' >"$tmp/sent"
check "eocheck: --sent file: unsent received seq is unexpected" rc_is 1 "$eo" -s "$tmp/sent" "$tmp/q2ok"
printf 't seq=1 qos=7 run=k\n' >"$tmp/bad"
check "eocheck: malformed record is an input error" rc_is 2 "$eo" -e 2:4:k "$tmp/bad"
Q=2 rec 0 1 2 3 | sed 's/run=k/run=other/' >"$tmp/foreign"
check "eocheck: other runs' records are ignored, so all count lost" rc_is 1 "$eo" -e 2:4:k "$tmp/foreign"

# --- proxy command line and control
fp=$bin/mqttq-faultproxy
for spec in cut cut:after=PUBWHAT cut:after=PUBREC,dir=up cut:after=PUBREC,n=0 stall:ms=x \
	delay:ms=5,after=PUBLISH bogus:after=PUBLISH; do
	check "proxy: refuses fault spec '$spec'" rc_is 2 "$fp" --connect 127.0.0.1:1 --fault "$spec" -T 1
done
check "proxy: --max-time ends it by itself" rc_is 0 timeout 5 "$fp" --connect 127.0.0.1:1 -T 1 \
	--fault cut:after=PUBREC,dir=s2c,n=3,conn=2 --fault rst:bytes=99 --fault delay:ms=3
ctl_test() {
	local out
	out=$(printf 'stats\nfault cut:before=PUBREL\nstall 10 c2s\nnope\nquit\n' |
		timeout 5 "$fp" --connect 127.0.0.1:1 --stdin -T 5 --port-file "$tmp/port" 2>/dev/null)
	grep -q '^conns=0 live=0 faults=0$' <<<"$out" && [ "$(grep -c '^ok$' <<<"$out")" -eq 3 ] &&
		grep -q "^error: unknown command 'nope'" <<<"$out" && [ -s "$tmp/port" ]
}
check "proxy: stdin commands answer, quit exits, port file written" ctl_test
sig_test() {
	local pid rc i
	"$fp" --connect 127.0.0.1:1 -T 30 --log "$tmp/sig.log" --seed 77 >/dev/null &
	pid=$!
	for ((i = 0; i < 50; i++)); do grep -q seed=77 "$tmp/sig.log" 2>/dev/null && break; sleep 0.1; done
	kill -TERM $pid
	wait $pid
	rc=$?
	[ $rc -eq 0 ] && grep -q 'exit conns=0 faults=0 (signal)' "$tmp/sig.log"
}
check "proxy: SIGTERM exits cleanly, seed logged" sig_test

# --- scenarios: publisher -> proxy -> mosquitto -> subscriber, judged by mqttq-eocheck.
# A client library is a pair of command templates (see scenario.sh); add a library
# by adding PUB_<lib>/SUB_<lib> and a matrix line at the bottom.
PUB_mosq="$peers/peer-mosq-pub -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json"
SUB_mosq="$peers/peer-mosq-sub -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 300 -o @OUT@ --ready @READY@ -W @TIMEOUT@"
PUB_paho="$peers/peer-paho-pub -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json"
SUB_paho="$peers/peer-paho-sub -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 300 -o @OUT@ --ready @READY@ -W @TIMEOUT@"
PUB_mqttq="$bin/mqttq-pubdrv -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json"
SUB_mqttq="$bin/mqttq-subdrv -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 300 -o @OUT@ --ready @READY@ -W @TIMEOUT@"
# The same publisher SIGKILLed 6 times at seeded random points (30-300 ms
# apart) and restarted on the same crash-safe outbox (--outbox) and progress
# file; the subscriber stays up. Seed is the run id's number, printed in the log.
PUB_mqttq_kill="bash $here/crashloop.sh 6 @SEED@ 30 300 ${PUB_mqttq/--json/--json --outbox $tmp/ob-@RUN@ --progress $tmp/pr-@RUN@}"
SUB_mqttq_kill=$SUB_mqttq

# Per-library bound on one scenario (seconds); a healthy run takes 1-3 s.
declare -A TIMEOUT=([mosq]=20 [paho]=8 [mqttq]=20 [mqttq_kill]=30)
: >"$results"
# Scenarios run FAULT_JOBS at a time (each has its own broker, proxy and ports;
# they mostly wait on the network), and are reported in order afterwards.
jobs_max=${FAULT_JOBS:-2}
nsc=0
declare -a SC_LIB SC_NAME SC_QOS SC_VER
# scenario LIB NAME QOS VERSION N [scenario.sh args...]
scenario() {
	local lib=$1 name=$2 qos=$3 ver=$4 n=$5 pubv="PUB_$1" subv="SUB_$1"
	shift 5
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
	SC_LIB[nsc]=$lib SC_NAME[nsc]=$name SC_QOS[nsc]=$qos SC_VER[nsc]=$ver
	(
		bash "$here/scenario.sh" --pub "${!pubv//@SEED@/$((1000 + nsc))}" --sub "${!subv}" --qos "$qos" -V "$ver" \
			-n "$n" --timeout "${TIMEOUT[$lib]:-20}" --name "$lib/$name" "$@" \
			>"$tmp/sc.$nsc.out" 2>&1
		rc=$?
		echo $rc >"$tmp/sc.$nsc.rc"
	) &
	nsc=$((nsc + 1))
}

# report INDEX: one TAP line for a finished scenario, classifying peer-library bugs.
report() {
	local i=$1 lib=${SC_LIB[$1]} name=${SC_NAME[$1]} qos=${SC_QOS[$1]} ver=${SC_VER[$1]}
	local rc res pubjson why
	cp "$tmp/sc.$i.out" "$tmp/sc.out"
	rc=$(cat "$tmp/sc.$i.rc" 2>/dev/null || echo 2)
	res=$(grep -m1 '^result ' "$tmp/sc.out")
	pubjson=$(grep -m1 '^pub ' "$tmp/sc.out")
	echo "lib=$lib ${res#result } rc=$rc" >>"$results"
	local what="$lib $name qos$qos v$ver"
	if [ $rc -eq 0 ]; then
		ok "$what: ${res#result name=* }"
		return
	fi
	# Violations lib.sh knows as bugs of a peer library or the broker, not of the code under test.
	if [ $rc -eq 1 ] && why=$(fault_known_bug "$lib" "$res" "$pubjson"); then
		ok "$what # SKIP known peer bug: $why (${res#result name=* })"
		return
	fi
	not_ok "$what: ${res#result name=* }"
	sed 's/^/# /' "$tmp/sc.out"
}

command -v mosquitto >/dev/null || { not_ok "mosquitto not installed (scripts/deps.sh)"; exit 1; }

# The harness must catch what it is for: a publisher one message short, and one
# that sends everything twice, both through scenario.sh and the checker.
control() { # control NAME WANT_REGEX scenario.sh args...
	local name=$1 want=$2 rc
	shift 2
	bash "$here/scenario.sh" --timeout 20 --grace 1 --name "control/$name" "$@" >"$tmp/ctl.out" 2>&1
	rc=$?
	if [ $rc -eq 1 ] && grep -Eq "$want" "$tmp/ctl.out"; then
		ok "harness: $name is reported as a violation"
	else
		not_ok "harness: $name is reported as a violation (exit $rc)"
		sed 's/^/# /' "$tmp/ctl.out"
	fi
}
short_pub="${PUB_mosq/-n @N@/-n 999}"
control "QoS 1 publisher one message short" '^result .* lost=1 dup=0 ' \
	--pub "$short_pub" --qos 1 -n 1000
printf '#!/bin/sh\n"$@" >/dev/null && exec "$@"\n' >"$tmp/twice.sh"
chmod +x "$tmp/twice.sh"
control "QoS 2 publisher sending everything twice" '^result .* lost=0 dup=1000 ' \
	--pub "$tmp/twice.sh $PUB_mosq" --sub "${SUB_mosq/-C @N@/-C 0}" --qos 2 -n 1000
matrix mqttq 2000 300 full
# The outbox is opt-in and may be absent from a build (mqttq_new -ENOTSUP): then SKIP.
"$bin/mqttq-pubdrv" -p 1 -n 1 -W 1 --outbox "$tmp/ob-probe" >/dev/null 2>"$tmp/ob-probe.err"
if grep -q 'mqttq_new: .*not supported' "$tmp/ob-probe.err"; then
	ok "mqttq sigkill+outbox # SKIP crash-safe outbox not in this build ($(head -c 200 "$tmp/ob-probe.err"))"
else
	for v in 311 5; do
		scenario mqttq_kill sigkill-outbox 1 $v 5000
		scenario mqttq_kill sigkill-outbox 2 $v 5000
	done
fi
matrix mosq 1000 150 full
matrix paho 1000 400 short
wait
for ((i = 0; i < nsc; i++)); do report $i; done

echo "# results in $results"
echo "1..$t"
[ $nfail -eq 0 ]
