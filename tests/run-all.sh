#!/bin/bash
# Installs the test dependencies, builds greyspf twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), and runs every test:
# the unit tests and SPF suites under CTest in both builds, then the
# integration tests (pytest, Debian's /usr/bin/python3) against the real
# binary. Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ "$(id -u)" = 0 ]; then
	scripts/install-deps.sh --test || exit 1
fi

jobs=$(nproc 2>/dev/null || echo 2)
failed=0
passed=0
tally() { # name status
	if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "== $1: ok";
	else failed=$((failed + 1)); echo "== $1: FAILED"; fi
}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
	cmake --build build -j"$jobs"
st=$?; tally "build" $st
[ $st = 0 ] || { echo "0 passed, 1 failed"; exit 1; }

(cd build && ctest --output-on-failure -j"$jobs")
tally "ctest (plain build)" $?

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGREYSPF_SANITIZE=ON \
	>/dev/null && cmake --build build-asan -j"$jobs"
st=$?; tally "build (asan+ubsan)" $st
if [ $st = 0 ]; then
	(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j"$jobs")
	tally "ctest all (asan+ubsan)" $?
fi

GREYSPF_BIN="$root/build/greyspf" /usr/bin/python3 -m pytest -q \
	-p no:cacheprovider tests/integration
tally "pytest integration" $?

# A real Postfix (private instance, swaks clients) in front of greyspf in
# all three modes. Its own pytest run: its conftest is not the integration
# suite's.
GREYSPF_BIN="$root/build/greyspf" /usr/bin/python3 -m pytest -q \
	-p no:cacheprovider tests/postfix
tally "pytest postfix" $?

# The same integration tests against the sanitizer build: the daemon must
# exit 0 at every teardown, so a leak, an overflow or undefined behaviour
# under real traffic fails the test that caused it.
if [ -x build-asan/greyspf ]; then
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
		GREYSPF_BIN="$root/build-asan/greyspf" /usr/bin/python3 -m \
		pytest -q -p no:cacheprovider tests/integration
	tally "pytest integration (asan+ubsan)" $?
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
		GREYSPF_BIN="$root/build-asan/greyspf" /usr/bin/python3 -m \
		pytest -q -p no:cacheprovider tests/postfix
	tally "pytest postfix (asan+ubsan)" $?
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
