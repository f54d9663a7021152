#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Inside the VM (tests/vm/run): loads mqttq.ko and runs libmqttq's offload engine against mosquitto (TAP).
set -uo pipefail

B=${1:?usage: offload-vm.sh BUILD_DIR}
IT="$B/tests/integration/mqttq-it"
KO="$B/kmod/$(uname -r)/mqttq.ko"
W=$(mktemp -d /tmp/mqttq-off.XXXXXX)
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; [ $# -gt 1 ] && echo "# $2"; }

insmod "$KO" || { echo "Bail out! insmod $KO"; exit 1; }
PORT=18831
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\n' $PORT >"$W/m.conf"
mosquitto -c "$W/m.conf" >"$W/m.log" 2>&1 &
MP=$!
for _ in $(seq 1 100); do ss -Hltn "sport = :$PORT" | grep -q . && break; sleep 0.1; done

for Q in ${OFFLOAD_VM_QOS:-0 1 2}; do
	rm -f "$W/ready" "$W/got"
	MQTTQ_OFFLOAD=off timeout 60 "$IT" sub -p $PORT -t off/q$Q -q $Q -V 5 -C 200 -L 300 -W 50 \
		-o "$W/got" --ready "$W/ready" 2>"$W/sub.err" &
	sp=$!
	for _ in $(seq 1 100); do [ -e "$W/ready" ] && break; sleep 0.1; done
	MQTTQ_OFFLOAD=on MQTTQ_DEBUG=1 timeout 60 "$IT" pub -p $PORT -t off/q$Q -q $Q -V 5 -n 200 \
		-w 20 -W 50 -r off$Q 2>"$W/pub.err"
	prc=$?
	wait $sp
	src=$?
	got=$(grep -c "seq=" "$W/got" 2>/dev/null)
	if [ $prc -eq 0 ] && [ $src -eq 0 ] && [ "$got" = 200 ] &&
		grep -q "offload engine: session runs in mqttq.ko" "$W/pub.err"; then
		ok "offload engine publishes 200 at QoS $Q through mqttq.ko"
	else
		notok "offload engine publishes 200 at QoS $Q through mqttq.ko" \
			"pub $prc sub $src got $got: $(grep -v connecting "$W/pub.err" | tail -3 | tr '\n' ' ')"
		if [ -n "${OFFLOAD_VM_VERBOSE:-}" ]; then
			grep -v "^mqttq: connecting" "$W/pub.err" | head -20 | sed 's/^/# pub: /'
			dmesg | tail -10 | sed 's/^/# dmesg: /'
		fi
	fi
done

rm -f "$W/ready" "$W/got"
MQTTQ_OFFLOAD=on MQTTQ_DEBUG=1 timeout 60 "$IT" sub -p $PORT -t off/in -q 2 -V 5 -C 100 -L 300 -W 50 \
	-o "$W/got" --ready "$W/ready" 2>"$W/sub.err" &
sp=$!
for _ in $(seq 1 100); do [ -e "$W/ready" ] && break; sleep 0.1; done
MQTTQ_OFFLOAD=off timeout 60 "$IT" pub -p $PORT -t off/in -q 2 -V 5 -n 100 -W 50 -r in 2>"$W/pub.err"
wait $sp
src=$?
got=$(grep -c "seq=" "$W/got" 2>/dev/null)
if [ $src -eq 0 ] && [ "$got" = 100 ]; then
	ok "offload engine receives 100 QoS 2 messages (records)"
else
	notok "offload engine receives 100 QoS 2 messages (records)" "sub $src got $got: $(tail -2 "$W/sub.err")"
	[ -n "${OFFLOAD_VM_VERBOSE:-}" ] && head -20 "$W/sub.err" | sed 's/^/# sub: /' 
fi
kill $MP

# The crash-safe outbox on the offload engine: a scripted broker, the client SIGKILLed and restarted.
timeout 120 "$B/tests/integration/mqttq-obo-it" "$W" >"$W/obo.out" 2>"$W/obo.err"
orc=$?
while read -r line; do
	case $line in
	"ok "*) ok "outbox: ${line#* - }" ;;
	"not ok "*) notok "outbox: ${line#* - }" ;;
	"# "*) echo "$line" ;;
	esac
done <"$W/obo.out"
grep -q '^1\.\.[1-9]' "$W/obo.out" ||
	notok "outbox on the offload engine ran to the end" "exit $orc: $(tail -3 "$W/obo.err" | tr '\n' ' ')"
echo "1..$n"
[ $fails -eq 0 ]
