#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Runs inside the test VM: mosquitto and the libmqttq drivers in two network namespaces joined by a lossy, reordering netem veth pair; exactly-once checked per QoS and version.
#
# usage: netem-vm.sh BUILD_DIR [N [MQTTQ_KO]]   (prints TAP lines "ok K - ..." numbered from 1)
# With MQTTQ_KO (this kernel's mqttq.ko) the four runs are repeated on the offload engine (N/4 each).
# Everything is written under /tmp: the VM sees the host read-only.
set -uo pipefail

B=${1:?usage: netem-vm.sh BUILD_DIR [N]}
n=${2:-2000}
ko=${3:-}
# The offload phase is the extra one: a quarter of the messages keeps the stage short.
n_off=$(((n + 3) / 4))
bin=$B/tests/fault
netem=${MQTTQ_NETEM:-loss 5% delay 1ms reorder 25% 50%}
timeout=${MQTTQ_NETEM_TIMEOUT:-100}
wd=$(mktemp -d /tmp/mqttq-netem.XXXXXX)
nsb=mqttq-nb nsc=mqttq-nc
combos=("1 311" "1 5" "2 311" "2 5")
t=0 rc=0 mpid=

ok() { t=$((t + 1)); echo "ok $t - $*"; }
not_ok() { t=$((t + 1)); echo "not ok $t - $*"; rc=1; }
cleanup() {
	[ -n "$mpid" ] && kill "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	ip netns del "$nsc" 2>/dev/null
}
trap cleanup EXIT
bail() {
	not_ok "$*"
	for f in "$wd"/*.log; do [ -f "$f" ] && tail -n 10 "$f" | sed "s|^|# ${f##*/}: |"; done
	echo "1..$t"
	exit 1
}

echo "# netem: kernel $(uname -r), qdisc netem $netem on both ends, $n messages per run"
modprobe veth && modprobe sch_netem || bail "modprobe veth sch_netem"
ip netns add "$nsb" && ip netns add "$nsc" &&
	ip link add nq0 netns "$nsb" type veth peer name nq1 netns "$nsc" &&
	ip -n "$nsb" addr add 10.199.0.1/24 dev nq0 && ip -n "$nsc" addr add 10.199.0.2/24 dev nq1 &&
	ip -n "$nsb" link set lo up && ip -n "$nsc" link set lo up &&
	ip -n "$nsb" link set nq0 up && ip -n "$nsc" link set nq1 up ||
	bail "two network namespaces joined by a veth pair"
# shellcheck disable=SC2086 # the netem spec is words on purpose
tc -n "$nsb" qdisc add dev nq0 root netem $netem && tc -n "$nsc" qdisc add dev nq1 root netem $netem &&
	tc -n "$nsb" qdisc show dev nq0 | grep -q 'netem' &&
	tc -n "$nsc" qdisc show dev nq1 | grep -q 'netem' ||
	bail "netem qdisc on both veth ends"
ok "veth pair between two namespaces, netem '$netem' on both ends"

cat >"$wd/mosquitto.conf" <<EOT
listener 1883 10.199.0.1
allow_anonymous true
max_inflight_messages 0
max_queued_messages 0
persistence false
user root
EOT
ip netns exec "$nsb" mosquitto -c "$wd/mosquitto.conf" >"$wd/mosquitto.log" 2>&1 &
mpid=$!
for ((i = 0; i < 100; i++)); do
	grep -q ' running$' "$wd/mosquitto.log" && break
	kill -0 "$mpid" 2>/dev/null || break
	sleep 0.1
done
grep -q ' running$' "$wd/mosquitto.log" || bail "mosquitto runs in namespace $nsb"

# One phase: all four runs at once (the link's delay and loss, not the CPU, bound each).
phase() {
	local eng=$1 n=$2 c q v run pids=()

	for c in "${combos[@]}"; do
		read -r q v <<<"$c"
		run=${eng}q${q}v${v}
		(
			if [ "$eng" = offload ]; then export MQTTQ_OFFLOAD=on; else export MQTTQ_OFFLOAD=off; fi
			ip netns exec "$nsc" timeout -k 2 $((timeout + 10)) "$bin/mqttq-subdrv" \
				-h 10.199.0.1 -p 1883 -t "mqttq/netem/$run" -q "$q" -V "$v" -i "sub-$run" -c \
				-C "$n" -L 300 -o "$wd/$run.txt" --ready "$wd/$run.ready" -W "$timeout" \
				>/dev/null 2>"$wd/$run.sub.log" &
			spid=$!
			for ((i = 0; i < 200; i++)); do
				[ -e "$wd/$run.ready" ] && break
				sleep 0.1
			done
			t0=$(date +%s%N)
			ip netns exec "$nsc" timeout -k 2 $((timeout + 5)) "$bin/mqttq-pubdrv" \
				-h 10.199.0.1 -p 1883 -t "mqttq/netem/$run" -q "$q" -n "$n" -V "$v" \
				-i "pub-$run" -c -r "$run" -w 20 -W "$timeout" --json \
				>"$wd/$run.json" 2>"$wd/$run.pub.log"
			echo $? >"$wd/$run.pubrc"
			echo $((($(date +%s%N) - t0) / 1000000)) >"$wd/$run.ms"
			# Whatever is missing by now is lost: bound the subscriber's wait.
			for ((i = 0; i < 50; i++)); do
				kill -0 "$spid" 2>/dev/null || break
				sleep 0.1
			done
			kill -TERM "$spid" 2>/dev/null
			wait "$spid"
			echo $? >"$wd/$run.subrc"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"

	for c in "${combos[@]}"; do
		read -r q v <<<"$c"
		run=${eng}q${q}v${v}
		judge "$eng" "$q" "$v" "$run" "$n"
	done
}

field() { printf '%s' "$1" | grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2; }
judge() {
	local eng=$1 q=$2 v=$3 run=$4 n=$5 check crc prc pubj what

	touch "$wd/$run.txt"
	if [ ! -e "$wd/$run.ready" ]; then
		not_ok "$eng QoS $q MQTT $v over netem: subscriber never subscribed"
		tail -n 5 "$wd/$run.sub.log" | sed 's/^/# sub: /'
		return
	fi
	check=$("$bin/mqttq-eocheck" --json --expect "$q:$n:$run" "$wd/$run.txt")
	crc=$?
	prc=$(cat "$wd/$run.pubrc" 2>/dev/null || echo '?')
	pubj=$(grep -m1 '^{' "$wd/$run.json" 2>/dev/null || echo '{}')
	what="$eng QoS $q MQTT $v over netem: sent $n lost $(field "$check" lost)"
	what+=" dup $(field "$check" dup) reordered $(field "$check" reordered)"
	what+=" unexpected $(field "$check" unexpected) reconnects $(field "$pubj" reconnects)"
	what+=" in $(cat "$wd/$run.ms") ms (publisher rc $prc)"
	if [ "$crc" -eq 0 ] && [ "$prc" = 0 ]; then
		ok "$what"
	else
		not_ok "$what"
		echo "# check $check"
		echo "# pub $pubj"
		tail -n 5 "$wd/$run.pub.log" | sed 's/^/# pub: /'
		tail -n 5 "$wd/$run.sub.log" | sed 's/^/# sub: /'
	fi
}

phase user "$n"
if [ -n "$ko" ]; then
	if insmod "$ko"; then
		phase offload "$n_off"
		# The module, not the library, must have run these flows.
		acks=$(cat /sys/kernel/mqttq/acks_in_kernel 2>/dev/null || echo 0)
		if [ "${acks:-0}" -ge "$n_off" ]; then
			ok "offload runs went through mqttq.ko ($acks acks handled in the kernel)"
		else
			not_ok "offload runs went through mqttq.ko (acks_in_kernel ${acks:-?} < $n_off)"
		fi
		# Finished flows hold no state: the sessions must go, and the module with them.
		for ((i = 0; i < 100; i++)); do
			sess=$(cat /sys/kernel/mqttq/sessions 2>/dev/null || echo '?')
			[ "$sess" = 0 ] && break
			sleep 0.1
		done
		if [ "$sess" = 0 ] && rmmod mqttq; then
			ok "no mqttq session left after the offload runs; rmmod mqttq"
		else
			not_ok "no mqttq session left after the offload runs ($sess); rmmod mqttq"
		fi
	else
		not_ok "insmod $ko"
	fi
fi

# The link must really have lost packets, or the runs above proved nothing.
drops() { tc -s -n "$1" qdisc show dev "$2" | grep -o 'dropped [0-9]*' | head -1 | cut -d' ' -f2; }
db=$(drops "$nsb" nq0) dc=$(drops "$nsc" nq1)
if [ "${db:-0}" -gt 0 ] && [ "${dc:-0}" -gt 0 ]; then
	ok "netem dropped packets both ways (broker side $db, client side $dc)"
else
	not_ok "netem dropped packets both ways (broker side ${db:-?}, client side ${dc:-?})"
fi
perr=$(grep -c 'disconnected due to \(protocol error\|malformed packet\)' "$wd/mosquitto.log")
if [ "$perr" -eq 0 ]; then
	ok "mosquitto saw no protocol error from the clients"
else
	not_ok "mosquitto disconnected $perr clients for protocol errors"
	grep 'disconnected due to' "$wd/mosquitto.log" | tail -n 5 | sed 's/^/# broker: /'
fi
echo "1..$t"
exit $rc
