#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Runs inside the test VM: inserts mqttq.ko and runs ../soak.sh with the libmqttq drivers on the offload engine.
#
# usage: soak-vm.sh BUILD_DIR MQTTQ_KO   (SOAK_N, SOAK_RATE, SOAK_SEED, SOAK_V as for soak.sh)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
B=${1:?usage: soak-vm.sh BUILD_DIR MQTTQ_KO}
ko=${2:?}
export B TMPDIR=/tmp
bin=$B/tests/fault
sysfs=/sys/kernel/mqttq
insmod "$ko" || { echo "soak-offload: insmod $ko failed"; exit 1; }
export MQTTQ_OFFLOAD=on
export SOAK_PUB="$bin/mqttq-pubdrv -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w 20 -W @TIMEOUT@ --json"
export SOAK_SUB="$bin/mqttq-subdrv -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 1000 -o @OUT@ --ready @READY@ -W @TIMEOUT@"
acks0=$(cat "$sysfs/acks_in_kernel")
bash "$here/../soak.sh"
rc=$?
acks=$(cat "$sysfs/acks_in_kernel")
echo "soak-offload: acks_in_kernel rose by $((acks - acks0))"
# Without acks handled in the module the soak proved nothing about it.
[ "$acks" -gt "$acks0" ] || rc=1
linger=$(cat /sys/module/mqttq/parameters/linger_s)
for ((i = 0; i < (linger + 10) * 10; i++)); do
	[ "$(cat $sysfs/sessions) $(cat $sysfs/inflight) $(cat $sysfs/bytes_held)" = "0 0 0" ] && break
	sleep 0.1
done
echo "soak-offload: left sessions=$(cat $sysfs/sessions) inflight=$(cat $sysfs/inflight) bytes_held=$(cat $sysfs/bytes_held)"
[ "$(cat $sysfs/sessions) $(cat $sysfs/inflight) $(cat $sysfs/bytes_held)" = "0 0 0" ] || rc=1
rmmod mqttq || rc=1
echo "soak-offload: exit $rc"
exit $rc
