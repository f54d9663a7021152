#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Inside the VM: loads mqttq.ko, SIGKILLs a publisher on the outbox + offload engine repeatedly (QoS 1/2, 3.1.1/5), then cuts its connection, and checks exactly-once (TAP).
set -uo pipefail

B=${1:?usage: vm.sh BUILD_DIR}
export B
here=$(cd "$(dirname "$0")" && pwd)
fault=$(cd "$here/.." && pwd)
bin=$B/tests/fault
KO="$B/kmod/$(uname -r)/mqttq.ko"
tmp=$(mktemp -d /tmp/mqttq-obo.XXXXXX)
N=${OBO_N:-2000}
t=0 nfail=0
ok() { t=$((t + 1)); echo "ok $t - $1"; }
not_ok() { t=$((t + 1)); nfail=$((nfail + 1)); echo "not ok $t - $1"; }

insmod "$KO" || { echo "Bail out! insmod $KO"; exit 1; }
stat() { cat "/sys/kernel/mqttq/$1"; }

# The publisher runs with MQTTQ_OFFLOAD=on: without the outbox on the offload
# engine it cannot even start (mqttq_connect refused it with ENOTSUP before).
PUB="env MQTTQ_OFFLOAD=on bash $fault/crashloop.sh 6 @SEED@ 30 300 $bin/mqttq-pubdrv -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json --outbox $tmp/ob-@RUN@ --progress $tmp/pr-@RUN@"
SUB="env MQTTQ_OFFLOAD=off $bin/mqttq-subdrv -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 300 -o @OUT@ --ready @READY@ -W @TIMEOUT@"

MQTTQ_OFFLOAD=on "$bin/mqttq-pubdrv" -p 1 -n 1 -W 1 --outbox "$tmp/ob-probe" >/dev/null 2>"$tmp/probe.err"
if grep -q "outbox works with the userspace engine only" "$tmp/probe.err"; then
	not_ok "the outbox is accepted on the offload engine ($(head -c 200 "$tmp/probe.err"))"
else
	ok "the outbox is accepted on the offload engine"
fi

i=0
for v in 311 5; do
	for q in 1 2; do
		i=$((i + 1))
		rel0=$(stat pubrel_sent) acks0=$(stat acks_in_kernel)
		bash "$fault/scenario.sh" --pub "${PUB//@SEED@/$((3000 + i))}" --sub "$SUB" --qos $q -V $v -n "$N" \
			--timeout 120 --grace 10 --name "obo/sigkill-outbox" >"$tmp/sc.out" 2>&1
		rc=$?
		res=$(grep -m1 '^result ' "$tmp/sc.out" | sed 's/^result name=[^ ]* //')
		rel1=$(stat pubrel_sent) acks1=$(stat acks_in_kernel)
		# the flows went through the kernel: its counters moved (PUBRELs for QoS 2)
		ink=$((acks1 - acks0)) inrel=$((rel1 - rel0))
		what="offload+outbox sigkill qos$q v$v: $res kernel_acks=$ink kernel_pubrels=$inrel"
		if [ $rc -eq 0 ] && [ $ink -gt 0 ] && { [ $q -eq 1 ] || [ $inrel -gt 0 ]; }; then
			ok "$what"
		else
			not_ok "$what (exit $rc)"
			sed 's/^/# /' "$tmp/sc.out" | head -40
		fi
	done
done
# In-process reconnects: the kernel session does not linger with the outbox, so the
# library puts its flows back on each new socket (PUBREL, not PUBLISH, past PUBREC).
PUB1="env MQTTQ_OFFLOAD=on $bin/mqttq-pubdrv -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json --outbox $tmp/ob-@RUN@"
for v in 311 5; do
	bash "$fault/scenario.sh" --pub "$PUB1" --sub "$SUB" --qos 2 -V $v -n "$N" --timeout 120 \
		--fault "cut:after=PUBREL,dir=c2s,n=300,conn=all" --name "obo/cut-after-PUBREL" \
		>"$tmp/sc.out" 2>&1
	rc=$?
	res=$(grep -m1 '^result ' "$tmp/sc.out" | sed 's/^result name=[^ ]* //')
	if [ $rc -eq 0 ]; then
		ok "offload+outbox cut-after-PUBREL qos2 v$v: $res"
	else
		not_ok "offload+outbox cut-after-PUBREL qos2 v$v: $res (exit $rc)"
		sed 's/^/# /' "$tmp/sc.out" | head -40
	fi
done
rmmod mqttq
rm -rf "$tmp"
echo "1..$t"
[ $nfail -eq 0 ]
