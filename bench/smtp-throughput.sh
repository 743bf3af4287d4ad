#!/bin/sh
# smtp-throughput.sh - mail throughput of a real Postfix with greyspf in
# the path, against the same Postfix without the policy check, in one run.
#
# A private Postfix instance (its own config and queue directories under
# one temporary folder, SMTP on loopback ports; the system Postfix is not
# touched) is configured as doc/postfix.md says for the chosen mode, with a
# second smtpd listener that has no check_policy_service. Postfix's
# smtp-source sends N messages over M parallel sessions (one connection per
# message, a new recipient each: -N) to both listeners, in ROUNDS rounds
# of alternating order; the medians count. greyspf greylists in learning mode (every triplet is
# recorded in LMDB, nothing is deferred); accepted mail is discarded.
# Prints messages/s for both and the ratio greyspf/plain.
#
# Settings (environment):
#   MESSAGES=2000   messages per measured run (at most 100000)
#   SESSIONS=20     parallel SMTP sessions (at most 100)
#   WARMUP=200      messages per listener before measuring, not counted
#   ROUNDS=3        measured runs per listener, alternating; medians count
#   MODES=inet      comma-separated: inet, unix, spawn
#   GREYSPF_BIN=build/greyspf   the binary (relative to the repository)
#   JSON_OUT=FILE   also write the results as JSON
#   REUSE=1         smtp-source -d: the M connections carry all messages
#                   (default: one connection per message)
#   KEEP=1          keep the temporary folder (logs)
#   WORKDIR_BASE=/tmp  where the temporary folder goes; /dev/shm takes the
#                   disk's fsync (Postfix queue files, LMDB commits) out
#                   of the figures
# Every smtp-source run is killed after 300 s. Requires root, postfix
# (smtp-source, smtp-sink) and /usr/bin/python3.
set -eu
cd "$(dirname "$0")/.."
GREYSPF_BIN=$(realpath "${GREYSPF_BIN:-build/greyspf}")
export GREYSPF_BIN
set -- --messages "${MESSAGES:-2000}" --sessions "${SESSIONS:-20}" \
	--warmup "${WARMUP:-200}" --rounds "${ROUNDS:-3}" --modes "${MODES:-inet}"
[ -n "${JSON_OUT:-}" ] && set -- "$@" --json "$JSON_OUT"
[ "${KEEP:-0}" = 1 ] && set -- "$@" --keep
[ "${REUSE:-0}" = 1 ] && set -- "$@" --reuse
set -- "$@" --workdir-base "${WORKDIR_BASE:-/tmp}"
exec timeout 1800 /usr/bin/python3 bench/smtp_throughput.py "$@"
