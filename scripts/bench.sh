#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# make bench: libmqttq (userspace, offload in the VM) against libmosquitto and paho, same broker, same work; tables, JSON, PNG.
#
#   scripts/bench.sh            full run (2-4 min here, most of it the VM)
#   BENCH_QUICK=1 scripts/bench.sh   under a minute, small counts
#   scripts/bench.sh --tap      also print TAP lines (the bench-quick check stage)
#   scripts/bench.sh --vm-inner RESULT_PREFIX   (internal: the offload part, inside the VM)
#
# Every figure printed is measured in this run; a driver that cannot run is shown as
# "not available: <why>".
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$top/build}
T=$B/tools
PEERS=$B/tests/peers
M=$B/bench/bench-measure
SINK=$B/bench/bench-acksink
. "$top/scripts/broker.sh"

quick=${BENCH_QUICK:-0}
tap=0 vm_inner=0
while [ $# -gt 0 ]; do
	case $1 in
	--tap) tap=1 ;;
	--vm-inner) vm_inner=1 ;;
	*) echo "bench: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

if [ "$quick" = 1 ]; then
	N=${BENCH_N:-3000} NC=${BENCH_NC:-1000} NVM=${BENCH_NVM:-300}
else
	N=${BENCH_N:-50000} NC=${BENCH_NC:-10000} NVM=${BENCH_NVM:-3000}
fi
S=${BENCH_SIZE:-64}
W=${BENCH_WINDOW:-64}
V=5
TCK=$(getconf CLK_TCK)
QOSES="0 1 2"

# jget FILE KEY: the first numeric or string value of "KEY" in a one-line JSON file.
jget() {
	sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$1" 2>/dev/null | head -1
}

# proc_ticks PID: sets ticks to utime+stime (fields 14 and 15 of /proc/PID/stat), builtins only.
proc_ticks() {
	local line f
	ticks=0
	read -r line <"/proc/$1/stat" 2>/dev/null || return 0
	line=${line##*) }
	read -ra f <<<"$line"
	ticks=$((f[11] + f[12]))
}

# driver_cmd NAME QOS PORT COUNT TOPIC: the command line of one publishing driver.
driver_cmd() {
	local name=$1 q=$2 p=$3 n=$4 t=$5
	case $name in
	mqttq-user) echo "$T/mqttq-bench pub -h 127.0.0.1 -p $p -V $V -q $q -s $S -L $n -w $W -t $t --offload off --json --quiet -W 280" ;;
	mqttq-offload) echo "$T/mqttq-bench pub -h 127.0.0.1 -p $p -V $V -q $q -s $S -L $n -w $W -t $t --offload on --json --quiet -W 280" ;;
	libmosquitto) echo "$PEERS/peer-mosq-pub -h 127.0.0.1 -p $p -V $V -q $q -s $S -n $n -w $W -t $t -W 280 --json" ;;
	paho) echo "$PEERS/peer-paho-pub -h 127.0.0.1 -p $p -V $V -q $q -s $S -n $n -w $W -t $t -W 280 --json" ;;
	esac
}

# measure LABEL DRIVER QOS PORT SERVERPID COUNT: one run, kept raw in $work/raw/ (no parsing:
# under TCG every fork+exec costs a lot, so the VM only measures and the host computes).
measure() {
	local label=$1 drv=$2 q=$3 p=$4 spid=$5 n=$6 out t0 t1 rc cmd
	out=$work/raw/$label+$drv+$q+$n
	mkdir -p "$work/raw"
	[ "${BENCH_TRACE:-0}" = 0 ] || echo "bench-trace: $label $drv QoS $q" >&2
	cmd=$(driver_cmd "$drv" "$q" "$p" "$n" "bench/$drv")
	proc_ticks "$spid"
	t0=$ticks
	# shellcheck disable=SC2086
	timeout 300 "$M" "$out.m" -- $cmd >"$out.j" 2>"$out.e"
	rc=$?
	proc_ticks "$spid"
	t1=$ticks
	echo "$t0 $t1 $rc" >"$out.t"
}

# row RAWBASE: the JSON row of one measured run, appended to $rows.
row() {
	local base=$1 label drv q n t0 t1 rc ok mps p50 p99 ut st nv sc srv why
	IFS=+ read -r label drv q n <<<"$(basename "$base")"
	read -r t0 t1 rc <"$base.t"
	ok=$(jget "$base.j" ok)
	if [ "$rc" -ne 0 ] || [ "$ok" != true ]; then
		why=$(grep -v '^ *$' "$base.e" | tail -1 | tr -d '"\\' | cut -c1-120)
		[ -n "$why" ] || why="exit status $rc"
		printf '{"set":"%s","driver":"%s","qos":%d,"available":false,"why":"%s"}\n' \
			"$label" "$drv" "$q" "$why" >>"$rows"
		return 1
	fi
	mps=$(jget "$base.j" msgs_per_s)
	p50=$(jget "$base.j" p50)
	p99=$(jget "$base.j" p99)
	ut=$(jget "$base.m" utime_us)
	st=$(jget "$base.m" stime_us)
	nv=$(jget "$base.m" nvcsw)
	sc=$(jget "$base.m" syscalls)
	srv=$(awk -v a="$t0" -v b="$t1" -v k="$TCK" -v n="$n" 'BEGIN { printf "%.3f", (b - a) * 1e6 / k / n }')
	awk -v set="$label" -v d="$drv" -v q="$q" -v n="$n" -v mps="$mps" -v p50="$p50" \
		-v p99="$p99" -v ut="$ut" -v st="$st" -v nv="$nv" -v sc="$sc" -v srv="$srv" \
		-v src="$(jget "$base.m" syscalls_source)" 'BEGIN {
		printf "{\"set\":\"%s\",\"driver\":\"%s\",\"qos\":%d,\"available\":true,\"messages\":%d,", set, d, q, n
		printf "\"msgs_per_s\":%.1f,\"user_us_per_msg\":%.3f,\"sys_us_per_msg\":%.3f,", mps, ut / n, st / n
		printf "\"server_us_per_msg\":%s,\"p50_us\":%d,\"p99_us\":%d,", srv, p50, p99
		printf "\"wakeups_per_64\":%.3f,\"syscalls_per_msg\":%s}\n", nv * 64 / n, (src == "perf" ? sprintf("%.3f", sc / n) : "null")
	}' >>"$rows"
}

run_row() {
	measure "$@"
	row "$work/raw/$1+$2+$3+$6"
}

# ---- inside the VM: module, private broker, offload and libmosquitto rows ----
if [ $vm_inner = 1 ]; then
	work=$(mktemp -d /tmp/bench-vm.XXXXXX)
	mkdir -p "$work/raw"
	rel=$(uname -r)
	ko=$top/build/kmod/$rel/mqttq.ko
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
	if ! insmod "$ko" 2>"$work/insmod.err"; then
		read -r why <"$work/insmod.err"
		echo "BENCHFAIL insmod failed in the VM: ${why//\"/}"
	else
		broker_start "$work/broker" "max_inflight_messages 1000" "max_queued_messages 100000" || exit 1
		for q in $QOSES; do
			measure vm mqttq-offload "$q" "$BROKER_PORT" "$BROKER_PID" "$NVM"
			measure vm libmosquitto "$q" "$BROKER_PORT" "$BROKER_PID" "$NVM"
		done
		# Contention: every CPU busy with a bounded hog while QoS 2 runs.
		hogs=()
		for c in 1 2; do
			timeout 120 sh -c 'while :; do :; done' &
			hogs+=($!)
		done
		measure vm-contention mqttq-offload 2 "$BROKER_PORT" "$BROKER_PID" "$NVM"
		measure vm-contention mqttq-user 2 "$BROKER_PORT" "$BROKER_PID" "$NVM"
		measure vm-contention libmosquitto 2 "$BROKER_PORT" "$BROKER_PID" "$NVM"
		kill "${hogs[@]}" 2>/dev/null
		broker_stop
		echo "BENCHSTAT $("$T/mqttq-stat" --json)"
		# One line per file: BENCHRAW name<TAB>content (each file is one line or empty).
		for f in "$work"/raw/*; do
			line=
			[ -s "$f" ] && { while IFS= read -r l; do line=$l; done <"$f"; }
			printf 'BENCHRAW %s\t%s\n' "${f##*/}" "$line"
		done
	fi
	exit 0
fi

# ---- on the host ----------------------------------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
res=$top/bench/results
mkdir -p "$res"
work=$(mktemp -d /tmp/mqttq-bench.XXXXXX)
rows=$work/rows.json
: >"$rows"
hogs=()
sink_pid=

cleanup() {
	broker_stop
	[ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null
	for h in "${hogs[@]}"; do kill "$h" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

echo "bench: building tools, peer drivers and helpers"
if ! make -C "$top" --no-print-directory -s tools peer-bins bench-bins >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	echo "bench: build failed" >&2
	exit 1
fi
# The syscall counter needs tracefs; mount it when missing (root only, harmless).
[ -e /sys/kernel/tracing/events ] && [ -n "$(ls /sys/kernel/tracing/events 2>/dev/null)" ] ||
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true

echo "bench: N=$N messages of $S bytes, window $W, MQTT v5, QoS $QOSES$([ "$quick" = 1 ] && echo ' (quick)')"
broker_start "$work/broker" "max_inflight_messages 1000" "max_queued_messages 100000" || exit 1

for q in $QOSES; do
	for d in mqttq-user libmosquitto paho; do
		echo "bench: broker QoS $q $d"
		run_row broker "$d" "$q" "$BROKER_PORT" "$BROKER_PID" "$N"
	done
done

# Ack sink: the client cost without the broker's limit on the rate.
"$SINK" "$work/sink.port" &
sink_pid=$!
for i in $(seq 1 50); do [ -s "$work/sink.port" ] && break; sleep 0.05; done
sp=$(cat "$work/sink.port" 2>/dev/null)
for q in 1 2; do
	for d in mqttq-user libmosquitto paho; do
		echo "bench: ack-sink QoS $q $d"
		run_row acksink "$d" "$q" "$sp" "$sink_pid" "$N"
	done
done
kill "$sink_pid" 2>/dev/null
wait "$sink_pid" 2>/dev/null
sink_pid=

# Contention: QoS 2 latency with every CPU kept busy by a bounded hog.
for c in $(seq 1 "$(nproc)"); do
	timeout 240 sh -c 'while :; do :; done' &
	hogs+=($!)
done
for d in mqttq-user libmosquitto; do
	echo "bench: contention QoS 2 $d"
	run_row contention "$d" 2 "$BROKER_PORT" "$BROKER_PID" "$NC"
done
for h in "${hogs[@]}"; do kill "$h" 2>/dev/null; done
wait "${hogs[@]}" 2>/dev/null
hogs=()
broker_stop

# Offload: the module and the offload engine in the VM, libmosquitto beside it.
rel=
for k in "$top"/build/kmod/*/mqttq.ko; do
	[ -f "$k" ] || continue
	r=$(basename "$(dirname "$k")")
	[ -f "/boot/vmlinuz-$r" ] && rel=$r && break
done
vmwhy=
if [ "$quick" = 1 ]; then
	vmwhy="not run in quick mode: the VM (qemu TCG) needs minutes; make bench runs it"
elif [ -z "$rel" ]; then
	vmwhy="mqttq.ko is not built for any installed kernel (see make in kmod/)"
elif [ ! -x "$top/tests/vm/run" ]; then
	vmwhy="tests/vm/run is missing"
else
	echo "bench: offload rows in the VM ($rel), $NVM messages each"
	timeout 600 "$top/tests/vm/run" "$rel" --timeout 540 --env "BENCH_QUICK=$quick" \
		--env "BENCH_NVM=$NVM" -- bash "$top/scripts/bench.sh" --vm-inner >"$work/vm.out" 2>"$work/vm.err"
	vrc=$?
	mkdir -p "$work/vmraw"
	grep '^BENCHRAW ' "$work/vm.out" | sed 's/^BENCHRAW //' | while IFS=$'\t' read -r name content; do
		printf '%s\n' "$content" >"$work/vmraw/$name"
	done
	grep '^BENCHSTAT ' "$work/vm.out" | sed 's/^BENCHSTAT //' >"$work/vmstat.json"
	for t in "$work"/vmraw/*.t; do
		[ -f "$t" ] && row "${t%.t}"
	done
	vmwhy=$(sed -n 's/^BENCHFAIL //p' "$work/vm.out" | head -1)
	grep -q '"set":"vm"' "$rows" || vmwhy=${vmwhy:-"the VM run ended with status $vrc before any row ($(tail -1 "$work/vm.err" | cut -c1-80))"}
fi
if [ -n "$vmwhy" ]; then
	for q in $QOSES; do
		printf '{"set":"vm","driver":"mqttq-offload","qos":%d,"available":false,"why":"%s"}\n' \
			"$q" "$vmwhy" >>"$rows"
	done
	printf '{"set":"vm-contention","driver":"mqttq-offload","qos":2,"available":false,"why":"%s"}\n' \
		"$vmwhy" >>"$rows"
fi

# ---- tables -----------------------------------------------------------------
txt=$res/bench-$stamp.txt json=$res/bench-$stamp.json
{
	echo "mqttq bench $stamp: $(uname -r), $(nproc) CPUs, N=$N (VM: $NVM, contention: $NC) x $S bytes, window $W, MQTT v5"
	echo "client CPU from getrusage of the driver process (bench-measure); server CPU from /proc/PID/stat (CLK_TCK $TCK)"
	echo "wakeups = voluntary context switches of the client, per 64 messages; syscalls via perf raw_syscalls:sys_enter"
	awk -v want_sets="broker acksink contention vm vm-contention" '
	function num(k,   m) { if (match($0, "\"" k "\":[-0-9.e]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m); return m } return "" }
	function str(k,   m) { if (match($0, "\"" k "\":\"[^\"]*\"")) { m = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", m); sub(/"$/, "", m); return m } return "" }
	{ n++; set[n] = str("set"); drv[n] = str("driver"); q[n] = num("qos"); line[n] = $0
	  if (drv[n] == "libmosquitto" && index($0, "\"available\":true")) base[set[n] "/" q[n]] = num("msgs_per_s") }
	END {
		ns = split(want_sets, sets, " ")
		title["broker"] = "via mosquitto on loopback"; title["acksink"] = "via the ack sink (server cost = the sink)"
		title["contention"] = "with all CPUs busy (CPU hog)"; title["vm"] = "in the VM (TCG): offload engine and libmosquitto, same run"
		title["vm-contention"] = "in the VM with the CPUs busy"
		for (si = 1; si <= ns; si++) for (qq = 0; qq <= 2; qq++) {
			hdr = 0
			for (i = 1; i <= n; i++) {
				if (set[i] != sets[si] || q[i] != qq) continue
				if (!hdr) { printf "\n== QoS %d %s\n%-14s %10s %8s %8s %9s %8s %8s %8s %9s %7s\n", qq, title[sets[si]], "driver", "msg/s", "user", "sys", "server", "p50", "p99", "wake/64", "sys/msg", "x mosq"; printf "%-14s %10s %8s %8s %9s %8s %8s %8s %9s %7s\n", "", "", "us/msg", "us/msg", "us/msg", "us", "us", "", "", ""; hdr = 1 }
				$0 = line[i]
				if (!index($0, "\"available\":true")) { printf "%-14s not available: %s\n", drv[i], str("why"); continue }
				b = base[set[i] "/" qq]; sc = num("syscalls_per_msg")
				printf "%-14s %10.0f %8.3f %8.3f %9.3f %8d %8d %8.3f %9s %7s\n", drv[i], num("msgs_per_s"), num("user_us_per_msg"), num("sys_us_per_msg"), num("server_us_per_msg"), num("p50_us"), num("p99_us"), num("wakeups_per_64"), (sc == "" ? "n/a" : sc), (b > 0 ? sprintf("%.2f", num("msgs_per_s") / b) : "-")
			}
		}
	}' "$rows"
	if [ -s "$work/vmstat.json" ]; then
		echo
		echo "module counters after the VM run: $(cat "$work/vmstat.json")"
	fi
} >"$txt"
{
	printf '{"stamp":"%s","kernel":"%s","cpus":%d,"messages":%d,"size":%d,"window":%d,"rows":[' \
		"$stamp" "$(uname -r)" "$(nproc)" "$N" "$S" "$W"
	paste -sd, "$rows"
	printf ']}\n'
} >"$json"
cat "$txt"
ln -sf "bench-$stamp.txt" "$res/latest.txt"
ln -sf "bench-$stamp.json" "$res/latest.json"

# ---- chart -----------------------------------------------------------------------
png=$res/bench-$stamp.png
if command -v gnuplot >/dev/null; then
	dat=$work/chart.dat
	{
		echo "qos mqttq-user libmosquitto paho"
		for q in $QOSES; do
			printf 'QoS%s' "$q"
			for d in mqttq-user libmosquitto paho; do
				v=$(grep "\"set\":\"broker\",\"driver\":\"$d\",\"qos\":$q,\"available\":true" "$rows" |
					sed -n 's/.*"user_us_per_msg":\([0-9.]*\),"sys_us_per_msg":\([0-9.]*\).*/\1 \2/p' |
					awk '{ print $1 + $2 }')
				printf ' %s' "${v:-0}"
			done
			echo
		done
	} >"$dat"
	gnuplot <<-EOF 2>"$work/gnuplot.err"
		set terminal png size 900,500
		set output "$png"
		set title "client CPU per message via mosquitto (user+system, lower is better), N=$N, $S B"
		set ylabel "us/msg"
		set style data histograms
		set style histogram clustered gap 1
		set style fill solid 0.8 border -1
		set key top left
		set grid ytics
		plot "$dat" using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4)
	EOF
	if [ -s "$png" ]; then
		ln -sf "bench-$stamp.png" "$res/latest.png"
		echo "bench: chart $png"
	else
		echo "bench: gnuplot failed: $(head -2 "$work/gnuplot.err")"
	fi
else
	echo "bench: no chart: gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)"
fi
echo "bench: results in $txt and $json"

if [ $tap = 1 ]; then
	i=0 bad=0
	for set in broker acksink contention; do
		i=$((i + 1))
		avail=$(grep -c "\"set\":\"$set\",.*\"available\":true" "$rows")
		unavail=$(grep "\"set\":\"$set\"," "$rows" | grep '"available":false' | sed 's/.*"driver":"\([^"]*\)".*"qos":\([0-9]\).*"why":"\([^"]*\)".*/\1 QoS \2: \3/')
		numeric=$(grep "\"set\":\"$set\",.*\"available\":true" "$rows" |
			grep -cE '"msgs_per_s":[0-9.]+,"user_us_per_msg":[0-9.]+,"sys_us_per_msg":[0-9.]+,"server_us_per_msg":[0-9.]+,"p50_us":[0-9]+,"p99_us":[0-9]+')
		# The userspace engine and libmosquitto must always run on the host.
		need=$(grep -c "\"set\":\"$set\",\"driver\":\"\(mqttq-user\|libmosquitto\)\"" "$rows")
		needok=$(grep -c "\"set\":\"$set\",\"driver\":\"\(mqttq-user\|libmosquitto\)\",.*\"available\":true" "$rows")
		if [ "$avail" -gt 0 ] && [ "$numeric" -eq "$avail" ] && [ "$need" -eq "$needok" ] &&
			grep -q "^== QoS [0-2] " "$txt"; then
			echo "ok $i - bench $set: $avail rows, every available row has numbers"
		else
			echo "not ok $i - bench $set: $numeric/$avail numeric rows, $needok/$need required rows ran"
			[ -z "$unavail" ] || echo "$unavail" | sed 's/^/# /'
			bad=1
		fi
	done
	i=$((i + 1))
	if grep -q '"set":"vm",' "$rows"; then
		echo "ok $i - bench offload rows present (measured or 'not available: why')"
	else
		echo "not ok $i - bench offload rows missing"
		bad=1
	fi
	i=$((i + 1))
	if [ -s "$json" ] && [ -s "$txt" ]; then
		echo "ok $i - bench wrote $txt and $json"
	else
		echo "not ok $i - bench results not written"
		bad=1
	fi
	exit $bad
fi
exit 0
