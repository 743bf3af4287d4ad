#!/bin/bash
# run_with_redis.sh PROGRAM [ARGS...] - runs PROGRAM against a private
# redis-server: its own loopback port and unix socket, its own temporary
# directory, no persistence (--save '' --appendonly no). The server is
# stopped by PID and the directory removed on exit, whatever happens.
# PROGRAM gets GREYSPF_REDIS_PORT, GREYSPF_REDIS_SOCK, GREYSPF_REDIS_PID.
set -u
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
# Seconds redis-server may take to answer PING.
START_TIMEOUT=10

if [ ! -x "$REDIS_SERVER" ]; then
	echo "run_with_redis: $REDIS_SERVER missing (apt-get install redis-server)" >&2
	exit 77
fi
TMP=$(mktemp -d /tmp/greyspf-redis-test.XXXXXX) || exit 1
PID=
cleanup() {
	if [ -n "$PID" ]; then
		kill -CONT "$PID" 2>/dev/null # a test may have stopped it
		kill "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$REDIS_SERVER" --port "$PORT" --bind 127.0.0.1 --unixsocket "$TMP/redis.sock" \
	--unixsocketperm 700 --dir "$TMP" --save '' --appendonly no \
	--daemonize no --logfile "$TMP/redis.log" &
PID=$!
for ((i = 0; i < START_TIMEOUT * 20; i++)); do
	if [ -S "$TMP/redis.sock" ] &&
		redis-cli -s "$TMP/redis.sock" ping 2>/dev/null | grep -q PONG; then
		break
	fi
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.05
done
if ! redis-cli -s "$TMP/redis.sock" ping 2>/dev/null | grep -q PONG; then
	echo "run_with_redis: redis-server did not start:" >&2
	cat "$TMP/redis.log" >&2
	exit 1
fi
GREYSPF_REDIS_PORT=$PORT GREYSPF_REDIS_SOCK=$TMP/redis.sock \
	GREYSPF_REDIS_PID=$PID "$@"
