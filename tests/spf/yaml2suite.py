#!/usr/bin/python3
"""Convert an openspf YAML test suite into the line format spf_suite_runner reads.

Usage: yaml2suite.py INPUT.yml OUTPUT.suite

Needs Debian's python3-yaml (/usr/bin/python3). One record per line, fields
separated by TAB; every field is escaped so that bytes outside 0x20..0x7e,
TAB and backslash appear as \\xNN:

  S  description                         a scenario starts
  O  owner                               owner name exists (lower case)
  Z  owner  TYPE  value [value2]         a record: A, AAAA, PTR, CNAME, TXT,
                                         MX (value=pref, value2=exchange),
                                         TIMEOUT (no value)
  T  name  host  helo  mailfrom  results  explanation
                                         results: comma-separated, preferred
                                         first; explanation: "-" if none,
                                         otherwise "=" followed by the text

Zone semantics follow pyspf's test driver (see the suite README): SPF records
are served as TXT unless the owner has an explicit TXT item; "TXT: NONE" means
no TXT records; strings are UTF-8 encoded; owner and target names are lower
case without a trailing dot.
"""
import sys

import yaml


def esc(value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    out = []
    for b in value:
        if b < 0x20 or b > 0x7E or b in (0x5C, 0x09):
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def name(n):
    n = str(n).lower()
    return n[:-1] if n.endswith(".") else n


def txt(v):
    if isinstance(v, list):
        return "".join(str(x) for x in v)
    return str(v)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="ascii") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    lines = []
    for doc in docs:
        lines.append("S\t" + esc(doc["description"]))
        for owner, items in (doc.get("zonedata") or {}).items():
            o = name(owner)
            lines.append("O\t" + esc(o))
            has_txt = any(isinstance(i, dict) and "TXT" in i for i in items)
            for item in items:
                if item == "TIMEOUT":
                    lines.append("Z\t%s\tTIMEOUT" % esc(o))
                    continue
                (rtype, value), = item.items()
                if rtype == "SPF":
                    if not has_txt:
                        lines.append("Z\t%s\tTXT\t%s" % (esc(o), esc(txt(value))))
                elif rtype == "TXT":
                    if value != "NONE":
                        lines.append("Z\t%s\tTXT\t%s" % (esc(o), esc(txt(value))))
                elif rtype == "MX":
                    pref, exch = value
                    lines.append("Z\t%s\tMX\t%d\t%s" % (esc(o), int(pref), esc(name(exch))))
                elif rtype in ("PTR", "CNAME"):
                    lines.append("Z\t%s\t%s\t%s" % (esc(o), rtype, esc(name(value))))
                elif rtype in ("A", "AAAA"):
                    lines.append("Z\t%s\t%s\t%s" % (esc(o), rtype, esc(str(value))))
                else:
                    raise SystemExit("unknown record type %r" % rtype)
        for tname, t in doc["tests"].items():
            res = t["result"]
            if not isinstance(res, list):
                res = [res]
            exp = t.get("explanation")
            lines.append("\t".join([
                "T", esc(tname), esc(str(t["host"])), esc(str(t["helo"])),
                esc(str(t["mailfrom"])), ",".join(res),
                "-" if exp is None else "=" + esc(str(exp)),
            ]))
    with open(dst, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
