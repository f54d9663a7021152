#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Integration tests of libmqttq against a real mosquitto started here on a free loopback port (TAP).
set -uo pipefail

B=${1:?usage: run.sh BUILD_DIR}
IT="$B/tests/integration/mqttq-it"
PEERS="$B/tests/peers"
W=$(mktemp -d /tmp/mqttq-it.XXXXXX)
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
BROKER_PID=
n=0
fails=0

cleanup() {
	stop_broker
	jobs -p | xargs -r kill 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; [ $# -gt 1 ] && echo "# $2"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
check() { # check NAME CMD...: one TAP line from a command's status
	local name=$1
	shift
	if "$@" >"$W/check.out" 2>&1; then ok "$name"; else notok "$name" "$(tail -3 "$W/check.out" | tr '\n' ' ')"; fi
}

free_port() {
	local p i
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

PORT=$(free_port) || { echo "Bail out! no free port"; exit 1; }

# start_broker [extra config lines...]: mosquitto on 127.0.0.1:$PORT with persistence in $W
start_broker() {
	{
		echo "listener $PORT 127.0.0.1"
		echo "allow_anonymous true"
		echo "user root"
		echo "persistence true"
		echo "persistence_location $W/"
		echo "persistence_file mosq.db"
		echo "autosave_interval 0"
		printf '%s\n' "$@"
	} >"$W/mosquitto.conf"
	"$MOSQ" -c "$W/mosquitto.conf" >>"$W/mosquitto.log" 2>&1 &
	BROKER_PID=$!
	for _ in $(seq 1 100); do
		ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . && return 0
		sleep 0.05
	done
	echo "# mosquitto did not start: $(tail -3 "$W/mosquitto.log")"
	return 1
}

stop_broker() {
	if [ -n "$BROKER_PID" ]; then
		kill "$BROKER_PID" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
		BROKER_PID=
	fi
}

# wait_file FILE: bounded wait for a ready marker
wait_file() {
	for _ in $(seq 1 100); do [ -e "$1" ] && return 0; sleep 0.05; done
	return 1
}

# check_seq FILE N [dups_ok]: seq=0..N-1, in order, each exactly once (at least once with dups_ok)
check_seq() {
	awk -v n="$2" -v dok="${3:-0}" '
		{ s = -1; for (i = 1; i <= NF; i++) if ($i ~ /^seq=/) s = substr($i, 5) + 0
		  if (s < 0) { print "bad line: " $0; bad = 1; next }
		  cnt[s]++
		  if (s < last && !dok) { print "out of order: " s " after " last; bad = 1 }
		  if (s > last) last = s }
		BEGIN { last = -1 }
		END { for (i = 0; i < n; i++) {
			if (!cnt[i]) { print "missing seq " i; bad = 1; break }
			if (cnt[i] > 1 && !dok) { print "duplicate seq " i; bad = 1; break } }
		      if (NR < n) { print "only " NR " of " n; bad = 1 }
		      exit bad }' "$1"
}

# sub_then_pub NAME SUBCMD PUBCMD COUNT [dups_ok]
sub_then_pub() {
	local name=$1 sub=$2 pub=$3 count=$4 dok=${5:-0}
	rm -f "$W/ready" "$W/got"
	$sub -C "$count" -L 300 -W 30 -o "$W/got" --ready "$W/ready" 2>"$W/sub.err" &
	local sp=$!
	if ! wait_file "$W/ready"; then
		kill $sp 2>/dev/null
		notok "$name" "subscriber not ready: $(tail -2 "$W/sub.err")"
		return
	fi
	if ! $pub -n "$count" -W 30 2>"$W/pub.err"; then
		kill $sp 2>/dev/null
		wait $sp 2>/dev/null
		notok "$name" "publisher failed: $(tail -2 "$W/pub.err" | tr '\n' ' ')"
		return
	fi
	wait $sp
	local src=$?
	if [ $src -ne 0 ]; then
		notok "$name" "subscriber exit $src: $(tail -2 "$W/sub.err" | tr '\n' ' ')"
		return
	fi
	check "$name" check_seq "$W/got" "$count" "$dok"
}

echo "# mosquitto $("$MOSQ" -h 2>&1 | head -1 | awk '{print $3}') on port $PORT"
start_broker || { echo "Bail out! mosquitto"; exit 1; }

# 1-6: each QoS in both versions, libmqttq to libmqttq through mosquitto
for V in 311 5; do
	for Q in 0 1 2; do
		# 3.1.1 has no Receive Maximum: mosquitto drops QoS 2 over its 20 in flight
		w=20
		[ $V = 5 ] && w=64
		sub_then_pub "v$V qos$Q: 300 messages arrive once, in order" \
			"$IT sub -p $PORT -t it/v$V/q$Q -q $Q -V $V" \
			"$IT pub -p $PORT -t it/v$V/q$Q -q $Q -V $V -w $w -r v${V}q$Q" 300
	done
done

# 7: retained message reaches a later subscriber, flagged retained
MQTTQ_IT_RETAIN=1 "$IT" pub -p "$PORT" -t it/retained -q 1 -V 5 -n 1 -r keep 2>"$W/pub.err"
rm -f "$W/ready"
MQTTQ_IT_SHOW_RETAIN=1 timeout 20 "$IT" sub -p "$PORT" -t it/retained -q 1 -V 5 -C 1 -W 10 \
	-o "$W/got" 2>"$W/sub.err"
check "retained message delivered to a new subscriber with retain set" \
	grep -q '^R:it/retained seq=0 qos=1 run=keep' "$W/got"

# 8: the will fires when a libmqttq client dies without DISCONNECT
rm -f "$W/ready" "$W/got" "$W/wready"
timeout 20 "$IT" sub -p "$PORT" -t it/will -q 1 -V 5 -C 1 -W 15 -o "$W/got" --ready "$W/ready" \
	2>"$W/sub.err" &
sp=$!
wait_file "$W/ready"
"$IT" will -p "$PORT" -t it/will -q 1 -V 5 -W 15 --ready "$W/wready" 2>"$W/will.err" &
wp=$!
wait_file "$W/wready"
kill -9 $wp
{ wait $wp; } 2>/dev/null
wait $sp
check "will published after the client died" grep -q '^it/will gone' "$W/got"

# 9-10: persistent session resumed after the subscriber reconnects (both versions)
for V in 311 5; do
	rm -f "$W/ready" "$W/got"
	"$IT" sub -p "$PORT" -t it/sess$V -q 1 -V "$V" -i "sess$V" -c -C 0 -W 1 --ready "$W/ready" \
		-o /dev/null 2>"$W/sub.err"
	"$IT" pub -p "$PORT" -t it/sess$V -q 1 -V "$V" -n 100 -r s$V 2>"$W/pub.err"
	timeout 20 "$IT" sub -p "$PORT" -t it/sess$V -q 1 -V "$V" -i "sess$V" -c -C 100 -L 200 -W 10 \
		-o "$W/got" 2>"$W/sub.err"
	check "v$V persistent session: messages queued while away arrive after reconnect" \
		check_seq "$W/got" 100
done

# 11: ...and after a broker restart, with persistence on
rm -f "$W/got"
"$IT" sub -p "$PORT" -t it/restart -q 2 -V 5 -i restart-sub -c -C 0 -W 1 -o /dev/null 2>"$W/sub.err"
"$IT" pub -p "$PORT" -t it/restart -q 2 -V 5 -n 100 -r rs 2>"$W/pub.err"
stop_broker
start_broker
timeout 20 "$IT" sub -p "$PORT" -t it/restart -q 2 -V 5 -i restart-sub -c -C 100 -L 200 -W 10 \
	-o "$W/got" 2>"$W/sub.err"
check "persistent session survives a broker restart (persistence on)" check_seq "$W/got" 100

# 12: a publisher keeps going across a broker restart: QoS 2 completes all, none lost
rm -f "$W/ready" "$W/got"
timeout 40 "$IT" sub -p "$PORT" -t it/bounce -q 2 -V 5 -i bounce-sub -c -C 400 -L 300 -W 30 \
	-o "$W/got" --ready "$W/ready" 2>"$W/sub.err" &
sp=$!
wait_file "$W/ready"
MQTTQ_IT_RATE=4 timeout 40 "$IT" pub -p "$PORT" -t it/bounce -q 2 -V 5 -i bounce-pub -c -n 400 \
	-W 30 -d 2>"$W/pub.err" &
pp=$!
sleep 0.4
stop_broker
sleep 0.2
start_broker
wait $pp
prc=$?
wait $sp
src=$?
if [ $prc -eq 0 ] && [ $src -eq 0 ] && grep -q 'reconnects [1-9]' "$W/pub.err"; then
	check "publisher survives a broker restart, QoS 2 delivered without loss" \
		check_seq "$W/got" 400 1
else
	notok "publisher survives a broker restart, QoS 2 delivered without loss" \
		"pub $prc sub $src: $(tail -2 "$W/pub.err" | tr '\n' ' ') $(tail -1 "$W/sub.err")"
fi

# 13: Receive Maximum from max_inflight_messages: the client stays within it
stop_broker
start_broker "max_inflight_messages 2"
"$IT" pub -p "$PORT" -t it/rm -q 1 -V 5 -n 1 -d 2>"$W/pub.err"
check "CONNACK Receive Maximum 2 from max_inflight_messages is read" \
	grep -q 'receive_max=2 ' "$W/pub.err"
sub_then_pub "QoS 1 with Receive Maximum 2: 500 arrive in order" \
	"$IT sub -p $PORT -t it/rm -q 1 -V 5" "$IT pub -p $PORT -t it/rm -q 1 -V 5 -w 64 -r rm" 500

# 15-16: large payloads near the limits
stop_broker
start_broker "max_packet_size 20000"
sub_then_pub "payloads just under the server's Maximum Packet Size" \
	"$IT sub -p $PORT -t it/big -q 1 -V 5" "$IT pub -p $PORT -t it/big -q 1 -V 5 -s 19900 -r big" 20
"$IT" pub -p "$PORT" -t it/big -q 1 -V 5 -s 20100 -n 1 2>"$W/pub.err"
check "payload over the server's Maximum Packet Size rejected locally (EMSGSIZE)" \
	grep -q 'Message too long' "$W/pub.err"
stop_broker
start_broker
sub_then_pub "900 KB payloads round-trip (v3.1.1 QoS 2)" \
	"$IT sub -p $PORT -t it/huge -q 2 -V 311" "$IT pub -p $PORT -t it/huge -q 2 -V 311 -s 900000 -r huge" 5

# 18-21: interop with libmosquitto and paho.mqtt.c, both directions, QoS 2 exactly once in order
for lib in mosq paho; do
	if [ ! -x "$PEERS/peer-$lib-sub" ] || [ ! -x "$PEERS/peer-$lib-pub" ]; then
		skip "libmqttq QoS 2 -> $lib subscriber" "peer-$lib not built"
		skip "$lib QoS 2 publisher -> libmqttq" "peer-$lib not built"
		continue
	fi
	sub_then_pub "libmqttq QoS 2 -> $lib subscriber: exactly once, in order" \
		"$PEERS/peer-$lib-sub -p $PORT -t it/x/$lib -q 2 -V 5" \
		"$IT pub -p $PORT -t it/x/$lib -q 2 -V 5 -w 20 -r x$lib" 500
	sub_then_pub "$lib QoS 2 publisher -> libmqttq subscriber: exactly once, in order" \
		"$IT sub -p $PORT -t it/y/$lib -q 2 -V 311" \
		"$PEERS/peer-$lib-pub -p $PORT -t it/y/$lib -q 2 -V 311 -w 20 -r y$lib" 500
done

stop_broker
echo "1..$n"
[ $fails -eq 0 ]
