#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# TAP tests of mqttq-pub/sub/bench/stat: options, exit codes, round trips through a private mosquitto, fake sysfs.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$top/build}
T=$B/tools
work=$(mktemp -d /tmp/mqttq-tools.XXXXXX)
n=0 failed=0

# shellcheck source=../../scripts/broker.sh
. "$top/scripts/broker.sh"

cleanup() {
	broker_stop
	rm -rf "$work"
}
trap cleanup EXIT

ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}

not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for l in "$@"; do echo "# $l"; done
}

# check NAME COMMAND...: ok when COMMAND succeeds.
check() {
	local name=$1
	shift
	if "$@" >"$work/check.out" 2>&1; then
		ok "$name"
	else
		not_ok "$name" "$(head -c 2000 "$work/check.out")" \
			"received: $(head -c 300 "$work/m.out" 2>/dev/null)" \
			"subscriber log: $(grep -v PUBLISH "$work/m.err" 2>/dev/null | tail -4)"
	fi
}

# expect_rc RC NAME COMMAND...: COMMAND exits with RC; stderr kept in $work/err.
expect_rc() {
	local want=$1 name=$2 rc
	shift 2
	timeout 20 "$@" >"$work/out" 2>"$work/err" </dev/null
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		ok "$name"
	else
		not_ok "$name" "exit status $rc, wanted $want" "$(head -c 1000 "$work/err")"
	fi
}

for b in mqttq-pub mqttq-sub mqttq-bench mqttq-stat; do
	if [ ! -x "$T/$b" ]; then
		echo "1..1"
		echo "not ok 1 - $T/$b is not built"
		exit 1
	fi
done

# ---- options, --help, usage errors -------------------------------------
for b in mqttq-pub mqttq-sub mqttq-bench mqttq-stat; do
	expect_rc 0 "$b --help exits 0" "$T/$b" --help
	check "$b --help prints usage" grep -q '^Usage: ' "$work/out"
done

usage_error() {
	local name=$1 prog=$2
	shift 2
	expect_rc 1 "$name: exit status 1" "$T/$prog" "$@"
	check "$name: ends with the --help hint" \
		grep -qx "Use '$prog --help' to see usage." "$work/err"
}
usage_error "pub without topic and message" mqttq-pub
usage_error "pub unknown option" mqttq-pub -t a -m b -Z
usage_error "pub QoS 3" mqttq-pub -t a -m b -q 3
usage_error "pub missing -q value" mqttq-pub -t a -m b -q
usage_error "pub two message sources" mqttq-pub -t a -m b -n
usage_error "pub wildcard topic" mqttq-pub -t 'a/#' -m b
usage_error "pub bad port" mqttq-pub -t a -m b -p 70000
usage_error "pub bad protocol version" mqttq-pub -t a -m b -V mqttv31
usage_error "pub bad --offload" mqttq-pub -t a -m b --offload maybe
usage_error "pub -c without client id" mqttq-pub -t a -m b -c
usage_error "pub mqtts URL" mqttq-pub -L mqtts://h/t -m b
usage_error "sub without topic" mqttq-sub
usage_error "sub bad wildcard" mqttq-sub -t 'a/#/b'
usage_error "sub bad --filter" mqttq-sub -t a --filter 'a+'
usage_error "sub bad -C" mqttq-sub -t a -C x
usage_error "bench unknown mode" mqttq-bench flood
usage_error "bench bad QoS" mqttq-bench pub -q 7
usage_error "stat unknown option" mqttq-stat -Z

expect_rc 1 "pub: refused connection exits 1" "$T/mqttq-pub" -p 1 -t a -m b
check "pub: refused connection says so" grep -qi 'connection' "$work/err"

# ---- mqttq-stat against a fake sysfs -------------------------------------
fs=$work/sysfs
mkdir -p "$fs/kernel/mqttq" "$fs/module/mqttq/parameters"
i=1
for c in sessions inflight acks_in_kernel pubrel_sent retransmits keepalive_timeouts \
	filter_drops protocol_errors bytes_held; do
	echo $((i * 11)) >"$fs/kernel/mqttq/$c"
	i=$((i + 1))
done
echo 123 >"$fs/module/mqttq/parameters/window"
echo coalesced >"$fs/module/mqttq/parameters/completion"
MQTTQ_SYSFS_ROOT=$fs expect_rc 0 "stat: fake tree exits 0" "$T/mqttq-stat"
check "stat: table shows a counter" grep -Eq '^  acks_in_kernel +33$' "$work/out"
check "stat: table shows a parameter" grep -Eq '^  window +123$' "$work/out"
check "stat: table shows a named parameter" grep -Eq '^  completion +coalesced$' "$work/out"
check "stat: counters come in the documented order" \
	bash -c "grep -Eo '^  [a-z_]+' '$work/out' | head -3 | tr -d ' ' | tr '\n' , | grep -qx 'sessions,inflight,acks_in_kernel,'"
MQTTQ_SYSFS_ROOT=$fs expect_rc 0 "stat --json exits 0" "$T/mqttq-stat" --json
check "stat --json carries values" \
	grep -q '"retransmits":55,.*"window":123,"completion":"coalesced"' "$work/out"
(sleep 0.4; echo 1033 >"$fs/kernel/mqttq/acks_in_kernel") &
MQTTQ_SYSFS_ROOT=$fs expect_rc 0 "stat -w 1 -n 1 exits after one line" "$T/mqttq-stat" -w 1 -n 1
wait
check "stat -w shows the rate of a counter" grep -Eq ' 1000/s ' "$work/out"
check "stat -w shows a gauge as a level" bash -c "tail -1 '$work/out' | grep -Eq '^1\\.[0-9] +11 +22 '"
MQTTQ_SYSFS_ROOT=$work/nothing expect_rc 3 "stat: module not loaded exits 3" "$T/mqttq-stat"
check "stat: not loaded is said plainly" grep -q 'mqttq kernel module is not loaded' "$work/err"

# ---- round trips through mosquitto ----------------------------------------
if ! broker_start "$work/broker" "max_inflight_messages 100"; then
	not_ok "broker starts" "$(tail -5 "$work/broker/mosquitto.log" 2>/dev/null)"
	echo "1..$n"
	exit 1
fi
P=$BROKER_PORT

# wait_for FILE PATTERN: until a line matches (at most 10 s); mqttq-sub -d logs its SUBACK.
wait_for() {
	local i
	for i in $(seq 1 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# fresh: removes the logs wait_for reads, before a subscriber starts. Without it wait_for
# could match the previous subscriber's "received SUBACK" (the new process truncates the
# file only once it runs) and the message would be published before this one subscribed:
# that, not libmqttq, was the "PUBLISH right after SUBACK is lost" race.
fresh() {
	rm -f "$work/m.err" "$work/o.raw" "$work/bs.err"
}

# wait_suback FILE: a subscriber logged its SUBACK.
wait_suback() {
	wait_for "$1" 'received SUBACK'
}

fmt='%t|%p|%q|%r|%l|%%|\n|%10t|%-5l|%05l|%x|%X|%-8p|%.2t|\t|@@|\\'
for v in 311 5; do
	for q in 0 1 2; do
		topic="rt/$v/$q"
		fresh
		timeout 20 "$T/mqttq-sub" -p "$P" -V "$v" -q 2 -t "rt/$v/#" -C 2 -F "$fmt" -d \
			>"$work/m.out" 2>"$work/m.err" &
		a=$!
		# mosquitto_sub -d logs to stdout (line-buffered by stdbuf, to be seen): taken out again below.
		timeout 20 stdbuf -oL mosquitto_sub -p "$P" -V "$v" -q 2 -t "rt/$v/#" -C 2 -F "$fmt" -d \
			>"$work/o.raw" 2>"$work/o.err" &
		c=$!
		wait_suback "$work/m.err"
		wait_for "$work/o.raw" 'received SUBACK'
		"$T/mqttq-pub" -p "$P" -V "$v" -q "$q" -t "$topic" -m "hello v$v q$q" 2>>"$work/m.err"
		pr=$?
		"$T/mqttq-pub" -p "$P" -V "$v" -q "$q" -t "$topic/empty" -n 2>>"$work/m.err"
		wait $a
		ra=$?
		wait $c
		rc=$?
		grep -av -e '^Client ' -e '^Subscribed (mid' "$work/o.raw" >"$work/o.out"
		if [ $pr -eq 0 ] && [ $ra -eq 0 ] && [ $rc -eq 0 ] && [ -s "$work/o.out" ] &&
			cmp -s "$work/m.out" "$work/o.out"; then
			ok "v$v QoS $q: mqttq-pub -> mosquitto -> mqttq-sub -F matches mosquitto_sub byte for byte"
		else
			not_ok "v$v QoS $q: -F round trip" "pub $pr sub $ra mosquitto_sub $rc" \
				"mqttq-sub: $(od -c "$work/m.out" | head -3)" \
				"mosquitto_sub: $(od -c "$work/o.out" | head -3)" "$(cat "$work/m.err")"
		fi
	done
done

# Default and -v output, and -N, against mosquitto_sub. The message is retained before
# either subscribes, so both get it without racing their SUBACKs.
mosquitto_pub -p "$P" -t out/a -m "first line" -r
for flags in "" "-v" "-v -N"; do
	# shellcheck disable=SC2086
	timeout 20 "$T/mqttq-sub" -p "$P" -t out/a -C 1 -W 5 $flags >"$work/m.out" 2>"$work/m.err"
	ra=$?
	# shellcheck disable=SC2086
	timeout 20 mosquitto_sub -p "$P" -t out/a -C 1 -W 5 $flags >"$work/o.out" 2>&1
	rc=$?
	if [ $ra -eq 0 ] && [ $rc -eq 0 ] && [ -s "$work/o.out" ] && cmp -s "$work/m.out" "$work/o.out"; then
		ok "output with '${flags:-no flags}' matches mosquitto_sub"
	else
		not_ok "output with '${flags:-no flags}'" "status $ra / $rc" "$(od -c "$work/m.out" | head -3)" \
			"$(od -c "$work/o.out" | head -3)"
	fi
done
mosquitto_pub -p "$P" -t out/a -n -r

# -v with an empty payload prints "topic (null)", live (a retained empty message is a delete).
fresh
timeout 20 "$T/mqttq-sub" -p "$P" -t out/b -C 1 -v -d >"$work/m.out" 2>"$work/m.err" &
a=$!
timeout 20 stdbuf -oL mosquitto_sub -p "$P" -t out/b -C 1 -v -d >"$work/o.raw" 2>&1 &
c=$!
wait_suback "$work/m.err"
wait_for "$work/o.raw" 'received SUBACK'
mosquitto_pub -p "$P" -t out/b -n
wait $a
wait $c
grep -av -e '^Client ' -e '^Subscribed (mid' "$work/o.raw" >"$work/o.out"
check "-v of an empty payload matches mosquitto_sub" \
	bash -c "[ \"\$(cat '$work/m.out')\" = 'out/b (null)' ] && cmp -s '$work/m.out' '$work/o.out'"

# -C: exits 0 after exactly COUNT messages though more are sent.
fresh
timeout 20 "$T/mqttq-sub" -p "$P" -t cnt -q 1 -C 3 -d >"$work/m.out" 2>"$work/m.err" &
a=$!
wait_suback "$work/m.err"
"$T/mqttq-pub" -p "$P" -t cnt -q 1 -m x --repeat 6
wait $a
ra=$?
check "sub -C 3: exit status 0" test $ra -eq 0
check "sub -C 3: exactly three messages" test "$(wc -l <"$work/m.out")" -eq 3

# -W: no message within the time: status 27 and "Timed out", as mosquitto_sub.
t0=$(date +%s)
expect_rc 27 "sub -W 1 without messages exits 27" "$T/mqttq-sub" -p "$P" -t silent -W 1
check "sub -W says Timed out" grep -qx 'Timed out' "$work/err"
check "sub -W 1 ends within 5 s" test $(($(date +%s) - t0)) -le 5

# -l, -f, -s, --repeat: what arrives is what was sent, in order.
printf 'one\ntwo\n\nfour\n' >"$work/lines"
fresh
timeout 20 "$T/mqttq-sub" -p "$P" -t lines -q 2 -C 4 -F '%l:%p' -d >"$work/m.out" 2>"$work/m.err" &
a=$!
wait_suback "$work/m.err"
"$T/mqttq-pub" -p "$P" -t lines -q 2 -l <"$work/lines"
wait $a
check "pub -l: one message per line, in order, empty line included" \
	test "$(cat "$work/m.out")" = "$(printf '3:one\n3:two\n0:\n4:four')"

head -c 3000 /dev/urandom >"$work/blob"
fresh
timeout 20 "$T/mqttq-sub" -p "$P" -t blob -q 1 -C 2 -F '%x' -d >"$work/m.out" 2>"$work/m.err" &
a=$!
wait_suback "$work/m.err"
"$T/mqttq-pub" -p "$P" -t blob -q 1 -f "$work/blob" 2>"$work/p1.err"
p1=$?
"$T/mqttq-pub" -p "$P" -t blob -q 1 -s <"$work/blob" 2>"$work/p2.err"
p2=$?
wait $a
ra=$?
want=$(od -An -v -tx1 "$work/blob" | tr -d ' \n')
if [ "$(cat "$work/m.out")" = "$(printf '%s\n%s' "$want" "$want")" ]; then
	ok "pub -f and -s send the binary file unchanged"
else
	not_ok "pub -f and -s send the binary file unchanged" "pub -f $p1, pub -s $p2, sub $ra" \
		"$(wc -c <"$work/m.out") bytes received" "$(tail -3 "$work/p1.err" "$work/p2.err" "$work/m.err")"
fi

# Retained messages: %r is 1 for a new subscriber; -R skips them.
"$T/mqttq-pub" -p "$P" -t ret/x -m kept -r -q 1
expect_rc 0 "sub receives a retained message" "$T/mqttq-sub" -p "$P" -t ret/x -C 1 -F '%r %p'
check "retained message has %r = 1" test "$(cat "$work/out")" = "1 kept"
expect_rc 27 "sub -R ignores the retained message" "$T/mqttq-sub" -p "$P" -t ret/x -C 1 -R -W 1
"$T/mqttq-pub" -p "$P" -t ret/x -n -r

# -L URL carries host, port and topic.
fresh
timeout 20 "$T/mqttq-sub" -L "mqtt://127.0.0.1:$P/url/t" -C 1 -v -d >"$work/m.out" 2>"$work/m.err" &
a=$!
wait_suback "$work/m.err"
"$T/mqttq-pub" -L "mqtt://127.0.0.1:$P/url/t" -m via-url
wait $a
check "-L mqtt://host:port/topic on both tools" test "$(cat "$work/m.out")" = "url/t via-url"

# --filter: only messages matching a local filter are printed. Loading the eBPF filter takes
# about 1 s of verifier time before the subscriber subscribes; the stale-log race (see fresh)
# made this test publish during that second, which looked like the filter losing messages.
fresh
timeout 20 "$T/mqttq-sub" -p "$P" -t 'flt/#' --filter 'flt/keep/+' -C 2 -v -d >"$work/m.out" 2>"$work/m.err" &
a=$!
wait_suback "$work/m.err"
for t in flt/drop/a flt/keep/a flt/drop/b flt/keep/b; do
	"$T/mqttq-pub" -p "$P" -t $t -m "$t" -q 1
done
wait $a
check "sub --filter prints only matching messages" \
	test "$(cat "$work/m.out")" = "$(printf 'flt/keep/a flt/keep/a\nflt/keep/b flt/keep/b')"

# Will: a subscriber killed without DISCONNECT makes the broker publish it.
fresh
timeout 20 "$T/mqttq-sub" -p "$P" -t will/t -C 1 -d >"$work/m.out" 2>"$work/m.err" &
a=$!
"$T/mqttq-sub" -p "$P" -t nothing -k 5 --will-topic will/t --will-payload gone --will-qos 1 \
	-d >/dev/null 2>"$work/w.err" &
w=$!
wait_suback "$work/w.err"
wait_suback "$work/m.err"

# Quiet bash's "Killed" job report: it goes to the shell's stderr.
exec 3>&2 2>/dev/null
kill -KILL $w
wait $w
exec 2>&3 3>&-
wait $a
check "--will-topic/--will-payload: the will arrives after a kill" test "$(cat "$work/m.out")" = gone

# --offload on without the module fails clearly; off works.
if [ -d /sys/kernel/mqttq ]; then
	ok "pub --offload on fails clearly without the module # SKIP the module is loaded"
else
	expect_rc 1 "pub --offload on fails without the module" \
		"$T/mqttq-pub" -p "$P" -t o -m x --offload on
	check "pub --offload on names the missing module" grep -q 'mqttq.ko\|module' "$work/err"
fi
expect_rc 0 "pub --offload off works" "$T/mqttq-pub" -p "$P" -t o -m x -q 2 --offload off

# mqttq-bench: small runs complete every message and report their costs.
for q in 0 1 2; do
	expect_rc 0 "bench pub QoS $q exits 0" "$T/mqttq-bench" pub -p "$P" -q $q -L 300 -s 32 \
		--json --quiet
	check "bench pub QoS $q: all 300 done, with latency and cpu" \
		grep -Eq "\"qos\":$q,.*\"messages\":300,\"failed\":0,.*\"p99\":[0-9]+.*\"cpu_user_us_per_msg\":[0-9.]+.*\"ok\":true" \
		"$work/out"
done
expect_rc 0 "bench pub with 3 clients and an interval exits 0" "$T/mqttq-bench" pub -p "$P" \
	-c 3 -q 1 -L 20 -I 5 -t 'b/%i' --json --quiet
check "bench -c 3 -L 20: 60 messages" grep -q '"clients":3,.*"messages":60,' "$work/out"
expect_rc 0 "bench conn exits 0" "$T/mqttq-bench" conn -p "$P" -c 4 --json
check "bench conn: 4 connections timed" grep -q '"mode":"conn".*"messages":4,' "$work/out"
fresh
timeout 30 "$T/mqttq-bench" sub -p "$P" -t 'bs/%i' -q 1 -L 50 --json >"$work/bs.out" \
	2>"$work/bs.err" &
a=$!
wait_for "$work/bs.err" 'subscribed'
sleep 0.3
"$T/mqttq-bench" pub -p "$P" -t 'bs/%i' -q 1 -L 50 --quiet >/dev/null 2>&1
wait $a
check "bench sub counts what bench pub sent" grep -q '"mode":"sub".*"messages":50,' "$work/bs.out"

echo "1..$n"
[ $failed -eq 0 ]
