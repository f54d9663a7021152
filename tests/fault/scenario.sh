#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR MIT
# Runs one fault scenario: mosquitto on a free loopback port, a publisher through mqttq-faultproxy, a subscriber direct, judged by mqttq-eocheck.
#
# Publisher and subscriber are command templates, so any client library can be
# put through the same faults. Placeholders replaced before running:
#   @PORT@ proxy port (publisher side)   @BPORT@ broker port (subscriber side)
#   @QOS@ @N@ @V@ (311|5) @RUN@ @TOPIC@ @TIMEOUT@ (seconds)
#   @OUT@ file the subscriber writes its lines to   @READY@ file it creates once subscribed
# The publisher must exit 0 once all N messages completed; the subscriber must
# write one line per received message holding the payload (see README.md).
# Prints one "result" line and the checker's JSON; exit 0 when the guarantees
# held, 1 when they did not, 2 on a set-up error (broker, proxy, subscriber).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${B:-$top/build}
bin=$B/tests/fault
peers=$B/tests/peers

qos=1 n=1000 ver=311 timeout=40 name=scenario seed= rate= restart_ms= maxf= keep=0 window=20 grace=3
faults=() cmds=() bconf=() trace=()
pub="$peers/peer-mosq-pub -h 127.0.0.1 -p @PORT@ -t @TOPIC@ -q @QOS@ -n @N@ -V @V@ -i pub-@RUN@ -c -r @RUN@ -w @WINDOW@ -W @TIMEOUT@ --json"
sub="$peers/peer-mosq-sub -h 127.0.0.1 -p @BPORT@ -t @TOPIC@ -q @QOS@ -V @V@ -i sub-@RUN@ -c -C @N@ -L 300 -o @OUT@ --ready @READY@ -W @TIMEOUT@"

usage() {
	sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'
	cat <<-'EOT'
	usage: scenario.sh [--pub CMD] [--sub CMD] [--fault SPEC]... [--seed N --rate P [--max-faults M]]
	                   [--qos Q] [-n N] [-V 311|5] [-w WINDOW] [--restart-broker MS]
	                   [--cmd-after "MS COMMAND"]... [--grace S] [--timeout S]
	                   [--broker-conf LINE]... [--trace] [--name NAME] [--keep]
	--cmd-after sends a proxy line command (cut, rst, stall 500, ...) MS ms after
	the publisher starts; --grace bounds how long the subscriber may keep
	waiting for missing messages once the publisher is done (default 3 s);
	--broker-conf appends a line to the generated mosquitto.conf; --trace logs
	every packet the proxy forwards into faults.log.
	EOT
}

while [ $# -gt 0 ]; do
	case $1 in
	--pub) pub=$2; shift ;;
	--sub) sub=$2; shift ;;
	--fault) faults+=(--fault "$2"); shift ;;
	--seed) seed=$2; shift ;;
	--rate) rate=$2; shift ;;
	--max-faults) maxf=$2; shift ;;
	--qos) qos=$2; shift ;;
	-n) n=$2; shift ;;
	-V) ver=$2; shift ;;
	-w) window=$2; shift ;;
	--restart-broker) restart_ms=$2; shift ;;
	--cmd-after) cmds+=("$2"); shift ;;
	--grace) grace=$2; shift ;;
	--broker-conf) bconf+=("$2"); shift ;;
	--timeout) timeout=$2; shift ;;
	--name) name=$2; shift ;;
	--keep) keep=1 ;;
	--trace) trace=(--trace) ;;
	-h|--help) usage; exit 0 ;;
	*) echo "scenario: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
case $qos in 0|1|2) ;; *) echo "scenario: --qos must be 0, 1 or 2" >&2; exit 2 ;; esac
case $ver in 311|5) ;; *) echo "scenario: -V must be 311 or 5" >&2; exit 2 ;; esac
[[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || { echo "scenario: -n must be positive" >&2; exit 2; }
for b in "$bin/mqttq-faultproxy" "$bin/mqttq-eocheck" "$bin/mqttq-freeport"; do
	[ -x "$b" ] || { echo "scenario: $b missing (run make)" >&2; exit 2; }
done
command -v mosquitto >/dev/null || { echo "scenario: mosquitto not installed" >&2; exit 2; }

wd=$(mktemp -d "${TMPDIR:-/tmp}/mqttq-fault.XXXXXX")
run="r$$"
topic="mqttq/fault/$run"
mpid= ppid_= spid= ppub=
cleanup() {
	for p in $ppub $spid $ppid_ $mpid; do kill "$p" 2>/dev/null; done
	for p in $ppub $spid $ppid_ $mpid; do wait "$p" 2>/dev/null; done
	if [ $keep -eq 1 ]; then echo "scenario: kept $wd" >&2; else rm -rf "$wd"; fi
}
trap cleanup EXIT

fail_setup() {
	echo "scenario: $name: $*" >&2
	for f in "$wd"/*.log; do [ -f "$f" ] && sed 's/^/# /' "$f" | tail -n 20 >&2; done
	exit 2
}

# Waits up to $2 tenths of a second for a TCP listener on 127.0.0.1:$1.
wait_port() {
	local i
	for ((i = 0; i < $2; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

wait_file() {
	local i
	for ((i = 0; i < $2; i++)); do
		[ -s "$1" ] || [ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# Returns 1 if mosquitto could not take the port (another test got it first).
starts=0
start_broker() {
	local i
	starts=$((starts + 1))
	mosquitto -c "$wd/mosquitto.conf" >>"$wd/mosquitto.log" 2>&1 &
	mpid=$!
	# The port answering is not enough (another test's broker could): wait for ours
	# to say it runs, or to die.
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$mpid" 2>/dev/null; then
			wait "$mpid" 2>/dev/null
			mpid=
			return 1
		fi
		[ "$(grep -c ' running$' "$wd/mosquitto.log")" -ge $starts ] && break
		sleep 0.05
	done
	wait_port "$bport" 50 || fail_setup "mosquitto did not listen on $bport"
}

write_conf() {
	cat >"$wd/mosquitto.conf" <<EOT
listener $bport 127.0.0.1
allow_anonymous true
max_inflight_messages 0
max_queued_messages 0
persistence true
persistence_location $wd/db/
autosave_interval 0
user $(id -un)
EOT
	for l in "${bconf[@]}"; do echo "$l" >>"$wd/mosquitto.conf"; done
}

mkdir -p "$wd/db"
for try in 1 2 3 4 5; do
	bport=$("$bin/mqttq-freeport") || fail_setup "no free port"
	write_conf
	start_broker && break
	[ "$try" -eq 5 ] && fail_setup "mosquitto could not take a free port 5 times"
done

rnd=()
[ -n "$seed" ] && rnd+=(--seed "$seed")
[ -n "$rate" ] && rnd+=(--rate "$rate")
[ -n "$maxf" ] && rnd+=(--max-faults "$maxf")
# The proxy takes line commands on stdin from a fifo this script holds open.
mkfifo "$wd/proxy.cmd"
exec 7<>"$wd/proxy.cmd"
"$bin/mqttq-faultproxy" --connect "127.0.0.1:$bport" --port-file "$wd/proxy.port" \
	--log "$wd/faults.log" --max-time $((timeout + 20)) -q --stdin "${faults[@]}" "${rnd[@]}" "${trace[@]}" \
	<"$wd/proxy.cmd" >"$wd/proxy.out" 2>"$wd/proxy.err" &
ppid_=$!
wait_file "$wd/proxy.port" 50 || fail_setup "proxy did not start: $(cat "$wd/proxy.err")"
port=$(cat "$wd/proxy.port")

expand() {
	local s=$1
	s=${s//@PORT@/$port}
	s=${s//@BPORT@/$bport}
	s=${s//@QOS@/$qos}
	s=${s//@N@/$n}
	s=${s//@V@/$ver}
	s=${s//@RUN@/$run}
	s=${s//@TOPIC@/$topic}
	s=${s//@TIMEOUT@/$timeout}
	s=${s//@WINDOW@/$window}
	s=${s//@OUT@/$wd/received.txt}
	s=${s//@READY@/$wd/sub.ready}
	printf '%s' "$s"
}

# shellcheck disable=SC2086 # templates are word-split on purpose
timeout -k 2 $((timeout + 10)) $(expand "$sub") >"$wd/sub.out" 2>"$wd/sub.log" &
spid=$!
wait_file "$wd/sub.ready" 100 || fail_setup "subscriber never subscribed"

t0=$(date +%s%N)
# shellcheck disable=SC2086
timeout -k 2 $((timeout + 5)) $(expand "$pub") >"$wd/pub.json" 2>"$wd/pub.log" &
ppub=$!
ms_sleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
done_ms=0
for c in "${cmds[@]}"; do
	at=${c%% *}
	[[ $at =~ ^[0-9]+$ ]] || fail_setup "--cmd-after needs 'MS COMMAND', not '$c'"
	[ "$at" -gt "$done_ms" ] && ms_sleep $((at - done_ms)) && done_ms=$at
	echo "${c#* }" >&7
done
if [ -n "$restart_ms" ]; then
	[ "$restart_ms" -gt "$done_ms" ] && ms_sleep $((restart_ms - done_ms))
	# SIGTERM makes mosquitto write its persistence file, so sessions survive.
	kill -TERM "$mpid"
	wait "$mpid" 2>/dev/null
	echo "$(date +%s.%N) broker restarted" >>"$wd/faults.log"
	start_broker || fail_setup "mosquitto could not take its port $bport back"
fi
wait "$ppub"
pub_rc=$?
ppub=
# Losses would keep the subscriber waiting for its count: bound that wait.
for ((i = 0; i < grace * 10; i++)); do
	kill -0 "$spid" 2>/dev/null || break
	sleep 0.1
done
kill -TERM "$spid" 2>/dev/null
wait "$spid"
sub_rc=$?
spid=
t1=$(date +%s%N)

nfaults=$(grep -c 'fault=\|broker restarted' "$wd/faults.log" || true)
touch "$wd/received.txt"
check=$("$bin/mqttq-eocheck" --json --expect "$qos:$n:$run" "$wd/received.txt")
check_rc=$?
pubjson=$(grep -m1 '^{' "$wd/pub.json" || echo '{}')
field() { printf '%s' "$check" | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }
# The broker's word on clients that broke the protocol (a client library bug, not a fault).
perr=$(grep -c 'disconnected due to \(protocol error\|malformed packet\)' "$wd/mosquitto.log" || true)
# With "log_type all": QoS 2 messages the broker re-sent as PUBLISH to a client id
# starting "sub-" after a restart although it had sent their PUBREL before it (and
# got no PUBCOMP) - a broker bug that makes the subscriber deliver them twice.
resent=$(awk '
	/ terminating$/ { after = 1; next }
	!after && /Sending PUBREL to sub-/ && match($0, /\(m[0-9]+\)/) {
		rel[substr($0, RSTART + 2, RLENGTH - 3)] = 1
	}
	!after && /Received PUBCOMP from sub-/ && match($0, /Mid: [0-9]+/) {
		delete rel[substr($0, RSTART + 5, RLENGTH - 5)]
	}
	after && /Sending PUBLISH to sub-.*\(d1, q2,/ && match($0, /, m[0-9]+,/) {
		if (substr($0, RSTART + 3, RLENGTH - 4) in rel) n++
	}
	END { print n + 0 }' "$wd/mosquitto.log")
printf 'result name=%s qos=%s version=%s sent=%s faults=%s lost=%s dup=%s reordered=%s pub_rc=%s sub_rc=%s protocol_errors=%s resent_after_pubrel=%s ms=%s\n' \
	"$name" "$qos" "$ver" "$n" "$nfaults" "$(field lost)" "$(field dup)" "$(field reordered)" \
	"$pub_rc" "$sub_rc" "$perr" "$resent" $(((t1 - t0) / 1000000))
echo "check $check"
echo "pub $pubjson"
if [ $check_rc -ne 0 ] || { [ $pub_rc -ne 0 ] && [ "$qos" -ne 0 ]; }; then
	sed 's/^/# faults: /' "$wd/faults.log" | grep -v 'conn=[0-9]* open' | tail -n 12
	sed 's/^/# pub: /' "$wd/pub.log" | tail -n 5
	sed 's/^/# sub: /' "$wd/sub.log" | tail -n 5
	grep -i 'error\|disconnected' "$wd/mosquitto.log" | sed 's/^/# broker: /' | tail -n 5
fi
# At QoS 0 a publisher may legitimately give messages up; only the checker judges.
[ "$qos" -eq 0 ] && pub_rc=0
[ $check_rc -eq 2 ] && exit 2
[ $check_rc -eq 0 ] && [ $pub_rc -eq 0 ] && exit 0
exit 1
