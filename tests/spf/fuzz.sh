#!/bin/sh
# Builds tests/spf/fuzz_spf with clang's libFuzzer (plus ASan/UBSan) and runs
# it for SECONDS (default 60) on a corpus seeded from the RFC 7208 suite's
# records. Usage: tests/spf/fuzz.sh [SECONDS] [WORKDIR]
set -eu
secs=${1:-60}
work=${2:-/tmp/greyspf-fuzz-spf}
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work/corpus"
clang -std=c17 -g -O1 -D_GNU_SOURCE -I"$top/src" \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	"$top/tests/spf/fuzz_spf.c" "$top"/src/spf/*.c "$top/src/util/addr.c" \
	"$top/src/util/xalloc.c" "$top/src/util/log.c" \
	-o "$work/fuzz_spf"
# Seeds: every TXT value of the suite, as a record (0), a macro-string (1)
# and evaluation data (2).
/usr/bin/python3 - "$top/tests/spf/suite/rfc7208-tests.yml" "$work/corpus" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
n = 0
for d in docs:
    for owner, items in (d.get("zonedata") or {}).items():
        for it in items:
            if isinstance(it, dict):
                for k, v in it.items():
                    if k in ("SPF", "TXT") and v != "NONE":
                        t = "".join(v) if isinstance(v, list) else str(v)
                        for sel in (0, 1, 2):
                            open("%s/seed%d" % (sys.argv[2], n), "wb").write(
                                bytes([sel]) + t.encode("utf-8"))
                            n += 1
PY
"$work/fuzz_spf" -max_total_time="$secs" -max_len=4096 \
	-artifact_prefix="$work/" "$work/corpus"
