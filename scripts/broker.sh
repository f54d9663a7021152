# SPDX-License-Identifier: GPL-2.0 OR MIT
# Shell helpers (sourced, not run) that start and stop a private mosquitto on a free loopback port.
#
#   . scripts/broker.sh
#   broker_start DIR [extra config lines...]   # sets BROKER_PORT, BROKER_PID, BROKER_CONF
#   broker_stop
#   broker_restart                             # same port, same config (persistence survives)

free_port() {
	local p tries=0
	while [ $tries -lt 200 ]; do
		p=$((20000 + RANDOM % 30000))
		if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
		tries=$((tries + 1))
	done
	echo "free_port: no free port found" >&2
	return 1
}

_broker_launch() {
	mosquitto -c "$BROKER_CONF" >>"$BROKER_DIR/mosquitto.log" 2>&1 &
	BROKER_PID=$!
	local i
	for i in $(seq 1 100); do
		if ss -Htln "sport = :$BROKER_PORT" 2>/dev/null | grep -q .; then
			return 0
		fi
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "broker: mosquitto did not start on port $BROKER_PORT:" >&2
	tail -5 "$BROKER_DIR/mosquitto.log" >&2
	return 1
}

broker_start() {
	BROKER_DIR=$1
	shift
	mkdir -p "$BROKER_DIR"
	BROKER_PORT=$(free_port) || return 1
	BROKER_CONF=$BROKER_DIR/mosquitto.conf
	{
		echo "listener $BROKER_PORT 127.0.0.1"
		echo "allow_anonymous true"
		echo "persistence false"
		echo "log_dest stderr"
		echo "log_type error"
		echo "log_type warning"
		printf '%s\n' "$@"
	} >"$BROKER_CONF"
	_broker_launch
}

broker_restart() {
	broker_stop
	_broker_launch
}

broker_stop() {
	if [ -n "${BROKER_PID:-}" ]; then
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
		BROKER_PID=
	fi
	return 0
}
