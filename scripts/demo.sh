#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# make demo: build, a private broker, the module (natively or in the VM), mqttq-sub receiving mqttq-pub at QoS 0/1/2, counters.
#
# It runs what exists and says plainly what does not; every figure it prints is measured
# in this run. `scripts/demo.sh --vm-inner` is the part that runs inside the VM.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$top/build}
T=$B/tools
. "$top/scripts/broker.sh"

inner=0
[ "${1:-}" = --vm-inner ] && inner=1
N=${DEMO_N:-2000}
[ $inner = 1 ] && N=${DEMO_VM_N:-200}
work=$(mktemp -d /tmp/mqttq-demo.XXXXXX)
trap 'broker_stop; rm -rf "$work"' EXIT

say() { echo "demo: $*"; }

# qos_table LABEL [extra mqttq tool flags]: N messages per QoS through the broker, counted at both ends.
qos_table() {
	local label=$1 q t0 t1 sent acked failed recv uniq lost dup rate engine
	shift
	printf '\n%s\n' "$label"
	printf '%-5s %8s %8s %8s %8s %8s %10s  %s\n' QoS sent acked received lost dup "msgs/s" engine
	for q in 0 1 2; do
		rm -f "$work/ready"
		timeout 60 "$T/mqttq-sub" -p "$BROKER_PORT" -t "demo/$q" -q "$q" -C "$N" -W 10 "$@" \
			>"$work/sub.$q" 2>"$work/sub.$q.err" &
		local sp=$!
		sleep 0.5
		seq 1 "$N" | sed 's/^/m/' >"$work/lines"
		t0=$(date +%s%N)
		timeout 60 "$T/mqttq-pub" -p "$BROKER_PORT" -t "demo/$q" -q "$q" -M 64 -l -d "$@" \
			<"$work/lines" >/dev/null 2>"$work/pub.$q.err"
		wait $sp
		t1=$(date +%s%N)
		sent=$(grep -c 'sending PUBLISH' "$work/pub.$q.err")
		acked=$(grep -c 'complete' "$work/pub.$q.err")
		failed=$(grep -c 'failed' "$work/pub.$q.err")
		recv=$(wc -l <"$work/sub.$q")
		uniq=$(sort -u "$work/sub.$q" | wc -l)
		lost=$((N - uniq))
		dup=$((recv - uniq))
		rate=$(awk -v n="$recv" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n * 1e9 / (b - a) }')
		engine=$(sed -n 's/.*received CONNACK (engine \([a-z]*\)).*/\1/p' "$work/pub.$q.err" | head -1)
		printf '%-5s %8d %8d %8d %8d %8d %10s  %s\n' "$q" "$sent" "$acked" "$recv" "$lost" "$dup" \
			"$rate" "${engine:-?}"
		[ "$failed" -eq 0 ] || say "QoS $q: $failed publishes failed: $(grep -m1 failed "$work/pub.$q.err")"
	done
	echo "(sent: PUBLISHes handed to the library; acked: completions (QoS 0: written, 1: PUBACK,"
	echo " 2: PUBCOMP); received/lost/dup: counted by mqttq-sub; msgs/s: received over the whole run)"
}

show_module() {
	local p=/sys/module/mqttq/parameters
	say "module parameters: $(cd $p && for f in *; do printf '%s=%s ' "$f" "$(cat "$f")"; done)"
	say "setting window to 32: echo 32 > $p/window"
	if echo 32 >"$p/window"; then
		say "window now reads back: $(cat $p/window)"
	else
		say "could not set the window"
	fi
}

# ---- inside the VM: module + broker + tools, all on the VM's loopback ----
if [ $inner = 1 ]; then
	rel=$(uname -r)
	if ! insmod "$top/build/kmod/$rel/mqttq.ko" 2>"$work/insmod.err"; then
		say "insmod mqttq.ko failed in the VM: $(cat "$work/insmod.err")"
		exit 1
	fi
	say "mqttq.ko loaded in the VM ($rel)"
	show_module
	broker_start "$work/broker" "max_inflight_messages 100" || exit 1
	say "mosquitto inside the VM on 127.0.0.1:$BROKER_PORT"
	if "$T/mqttq-pub" -p "$BROKER_PORT" -t demo/probe -m x --offload on 2>"$work/probe.err"; then
		say "libmqttq connects through the offload engine (mqttq.ko)"
	else
		say "libmqttq cannot use the offload engine yet, so the rows below use its userspace engine:"
		say "  $(head -1 "$work/probe.err")"
	fi
	qos_table "In the VM (qemu TCG, slow by design), $N messages per QoS, --offload auto:" \
		--offload auto
	echo
	"$T/mqttq-stat"
	exit 0
fi

t_start=$(date +%s)
say "building (make all)"
if make -C "$top" --no-print-directory -j"$(nproc)" all >"$work/build.log" 2>&1; then
	say "build complete"
else
	say "the full build failed; building just the tools:"
	grep -E 'error|Error' "$work/build.log" | head -5 | sed 's/^/    /'
	if ! make -C "$top" --no-print-directory -j"$(nproc)" tools >"$work/tools.log" 2>&1; then
		say "the tools do not build either:"
		tail -5 "$work/tools.log"
		exit 1
	fi
fi

broker_start "$work/broker" "max_inflight_messages 100" || exit 1
say "mosquitto on 127.0.0.1:$BROKER_PORT (config $BROKER_CONF)"

native=0
if [ -d /sys/module/mqttq ] || modprobe mqttq 2>"$work/modprobe.err"; then
	native=1
	say "mqttq module loaded natively"
	show_module
else
	say "modprobe mqttq does not work here: $(head -1 "$work/modprobe.err")"
fi

qos_table "On this host, $N messages per QoS, userspace engine (--offload off):" --offload off
if [ $native = 1 ]; then
	qos_table "On this host, $N messages per QoS, --offload auto (module loaded):" --offload auto
fi
echo
"$T/mqttq-stat" || say "(mqttq-stat exit status $?: see above)"

if [ $native = 0 ]; then
	rel=
	for k in "$top"/build/kmod/*/mqttq.ko; do
		[ -f "$k" ] || continue
		r=$(basename "$(dirname "$k")")
		[ -f "/boot/vmlinuz-$r" ] && rel=$r && break
	done
	echo
	if [ -z "$rel" ]; then
		say "offload part not run: mqttq.ko is not built for any installed kernel yet"
	elif [ ! -x "$top/tests/vm/run" ]; then
		say "offload part not run: tests/vm/run is missing"
	else
		say "running the module part in a VM ($rel): broker and tools inside it, on its loopback"
		timeout 150 "$top/tests/vm/run" "$rel" --timeout 140 -- bash "$top/scripts/demo.sh" \
			--vm-inner 2>"$work/vm.err" | grep -v '^\[ *[0-9.]*\]'
		rc=${PIPESTATUS[0]}
		[ "$rc" -eq 0 ] || say "the VM part ended with status $rc: $(grep '^vm:' "$work/vm.err" | tail -1)"
	fi
fi
say "done in $(($(date +%s) - t_start)) s"
