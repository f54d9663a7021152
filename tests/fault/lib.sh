# SPDX-License-Identifier: GPL-2.0 OR MIT
# Sourced by run-tests.sh and offload/fault-vm.sh: the fault scenario matrix and the classification of known peer bugs.
#
# The sourcing script defines scenario LIB NAME QOS VERSION N [scenario.sh args...];
# matrix only says which scenarios make up a library's matrix.

# fault_known_bug LIB RESULT_LINE PUB_JSON: for a scenario that exited 1, prints
# why the violation is a known bug outside the code under test and returns 0;
# returns 1 when it is not one (a real failure).
fault_known_bug() {
	local lib=$1 res=$2 pubjson=$3 failed prc perr lost dup resent

	failed=$(grep -o '"failed":[0-9]*' <<<"$pubjson" | cut -d: -f2)
	if [ "$lib" = paho ] && [ "${failed:-0}" -gt 0 ]; then
		# The library itself reported these publishes failed after the cut and did not resume them.
		echo "paho MQTTAsync gave up $failed in-flight publishes on connection loss"
		return 0
	fi
	prc=$(sed -n 's/.* pub_rc=\([0-9]*\) .*/\1/p' <<<"$res")
	if [ "$lib" = paho ] && [ "${prc:-0}" -gt 128 ] && [ "${prc:-0}" -lt 160 ]; then
		# Seen once in random-seed-8 (the reset paho never recovers from, README
		# "Known peer bugs" 3): the paho publisher process died on a signal.
		echo "paho publisher died by signal $((prc - 128)) after the reset it does not recover from"
		return 0
	fi
	perr=$(sed -n 's/.* protocol_errors=\([0-9]*\) .*/\1/p' <<<"$res")
	if [ "$lib" = paho ] && [ "${perr:-0}" -gt 0 ]; then
		# mosquitto dropped the client for a protocol error after a reconnect; the client then stalls.
		echo "paho MQTTAsync sent packets mosquitto rejects (protocol error / malformed) after reconnecting and stalled"
		return 0
	fi
	lost=$(sed -n 's/.* lost=\([0-9]*\) .*/\1/p' <<<"$res")
	dup=$(sed -n 's/.* dup=\([0-9]*\) .*/\1/p' <<<"$res")
	resent=$(sed -n 's/.* resent_after_pubrel=\([0-9]*\) .*/\1/p' <<<"$res")
	if [ "${lost:-1}" -eq 0 ] && [ "${dup:-0}" -gt 0 ] && [ "${resent:-0}" -ge "$dup" ]; then
		# The broker's own log shows every duplicate: re-sent as PUBLISH after its PUBREL
		# went out before the restart (broker->subscriber leg, whatever the clients).
		echo "mosquitto 2.0.11 re-sent $resent QoS 2 messages past PUBREL after a persistent restart"
		return 0
	fi
	return 1
}

matrix() { # matrix LIB N CUTN full|short
	local lib=$1 n=$2 k=$3 v
	for v in 311 5; do
		if [ "$4" = short ]; then
			scenario "$lib" cut-after-PUBLISH 1 $v "$n" --fault "cut:after=PUBLISH,dir=c2s,n=$k,conn=all"
			scenario "$lib" cut-after-PUBREC 2 $v "$n" --fault "cut:after=PUBREC,dir=s2c,n=$k,conn=all"
			scenario "$lib" cut-after-PUBREL 2 $v "$n" --fault "cut:after=PUBREL,dir=c2s,n=$k,conn=all"
			scenario "$lib" cut-mid-packet-c2s 2 $v "$n" --fault "cut:bytes=$((k * 100 + 41)),dir=c2s,conn=all"
			scenario "$lib" cut-after-PUBLISH 0 $v "$n" --fault "cut:after=PUBLISH,dir=c2s,n=$k,conn=all" --grace 1
			scenario "$lib" broker-restart 2 $v "$n" --restart-broker 100 --broker-conf "log_type all"
			# Found by the soak: a random reset that paho never recovers from (README).
			[ $v = 311 ] && scenario "$lib" random-seed-8 1 $v 20000 --seed 8 --rate 0.0002 --timeout 12
			continue
		fi
		scenario "$lib" cut-after-PUBLISH 1 $v "$n" --fault "cut:after=PUBLISH,dir=c2s,n=$k,conn=all"
		scenario "$lib" cut-before-PUBACK 1 $v "$n" --fault "cut:before=PUBACK,dir=s2c,n=$k,conn=all"
		scenario "$lib" cut-after-PUBACK 1 $v "$n" --fault "cut:after=PUBACK,dir=s2c,n=$k,conn=all"
		scenario "$lib" rst-after-PUBLISH 1 $v "$n" --fault "rst:after=PUBLISH,dir=c2s,n=$k,conn=all"
		scenario "$lib" cut-mid-packet 1 $v "$n" --fault "cut:bytes=$((k * 90 + 37)),dir=c2s,conn=all"
		scenario "$lib" cut-after-PUBLISH 2 $v "$n" --fault "cut:after=PUBLISH,dir=c2s,n=$k,conn=all"
		scenario "$lib" cut-after-PUBREC 2 $v "$n" --fault "cut:after=PUBREC,dir=s2c,n=$k,conn=all"
		scenario "$lib" cut-before-PUBREC 2 $v "$n" --fault "cut:before=PUBREC,dir=s2c,n=$k,conn=all"
		scenario "$lib" cut-after-PUBREL 2 $v "$n" --fault "cut:after=PUBREL,dir=c2s,n=$k,conn=all"
		scenario "$lib" cut-after-PUBCOMP 2 $v "$n" --fault "cut:after=PUBCOMP,dir=s2c,n=$k,conn=all"
		scenario "$lib" rst-after-PUBREL 2 $v "$n" --fault "rst:after=PUBREL,dir=c2s,n=$k,conn=all"
		scenario "$lib" cut-mid-packet-c2s 2 $v "$n" --fault "cut:bytes=$((k * 100 + 41)),dir=c2s,conn=all"
		scenario "$lib" cut-mid-packet-s2c 2 $v "$n" --fault "cut:bytes=$((k * 8 + 2)),dir=s2c,conn=all"
		scenario "$lib" stall-and-rst-cmd 2 $v "$n" --cmd-after "50 stall 300 s2c" --cmd-after "150 rst"
		scenario "$lib" delay-and-cuts 2 $v "$n" --fault "delay:ms=2,conn=all" \
			--fault "cut:after=PUBREC,dir=s2c,n=$k,conn=all"
		scenario "$lib" random-seed-42 2 $v "$n" --seed 42 --rate 0.002 --max-faults 8
		scenario "$lib" cut-after-PUBLISH 0 $v "$n" --fault "cut:after=PUBLISH,dir=c2s,n=$k,conn=all" --grace 1
		scenario "$lib" broker-restart 1 $v "$n" --restart-broker 100
		scenario "$lib" broker-restart 2 $v "$n" --restart-broker 100 --broker-conf "log_type all"
	done
}
