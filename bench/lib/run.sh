#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# make bench-lib: 10^6 x 64 B publishes at QoS 0/1/2 to a local mosquitto, libmqttq next to libmosquitto.
set -uo pipefail

BIN=${1:?usage: run.sh BENCH_BINARY}
N=${BENCH_N:-1000000}
WIN=${BENCH_WINDOW:-64}
VER=${BENCH_VERSION:-5}
W=$(mktemp -d /tmp/mqttq-bench.XXXXXX)
HZ=$(getconf CLK_TCK)
PID=

cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

for _ in $(seq 1 50); do
	PORT=$((20000 + RANDOM % 40000))
	ss -Hltn "sport = :$PORT" | grep -q . || break
done
{
	echo "listener $PORT 127.0.0.1"
	echo "allow_anonymous true"
	echo "max_inflight_messages $WIN"
	echo "max_queued_messages 1000000"
	# BENCH_NODELAY=1: the broker sends its acks without Nagle
	[ "${BENCH_NODELAY:-0}" = 1 ] && echo "set_tcp_nodelay true"
} >"$W/m.conf"
mosquitto -c "$W/m.conf" >"$W/m.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do ss -Hltn "sport = :$PORT" | grep -q . && break; sleep 0.05; done

broker_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

echo "# $N messages of 64 B, window $WIN, MQTT v$VER, mosquitto $(mosquitto -h | head -1 | awk '{print $3}')" \
	"nodelay=${BENCH_NODELAY:-0}, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-12s %3s %10s %10s %10s %10s %12s %14s\n' lib qos msgs/s user_us sys_us client_us broker_us client+broker
for Q in 0 1 2; do
	for L in mqttq mosq; do
		b0=$(broker_ticks)
		line=$("$BIN" -l $L -p "$PORT" -q $Q -n "$N" -w "$WIN" -v "$VER") || {
			echo "$L qos$Q failed"
			continue
		}
		b1=$(broker_ticks)
		set -- $line
		awk -v lib="$([ $L = mosq ] && echo libmosquitto || echo libmqttq)" -v q=$Q -v n="$N" \
			-v s="$4" -v u="$5" -v sy="$6" -v bt=$((b1 - b0)) -v hz="$HZ" 'BEGIN {
			b = bt * 1e6 / hz / n
			printf "%-12s %3d %10.0f %10.2f %10.2f %10.2f %12.2f %14.2f\n", lib, q, n / s,
				u / n, sy / n, (u + sy) / n, b, (u + sy) / n + b }'
	done
done
