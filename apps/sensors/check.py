#!/usr/bin/env python3
"""Checks apps/sensors' output against what loadgen.py said it injected (--expect).

  python3 apps/sensors/check.py expected.json OUT_DIR [ALERT_ABOVE]

Every window (count and average), every alert (exactly the hot minutes), every gap, duplicate
and late reading per sensor, each once. Exit status 0 when all match.
"""
import json
import sys


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(l) for l in f.read().splitlines()]
    except FileNotFoundError:
        return []


def main():
    expect = json.load(open(sys.argv[1], encoding="utf-8"))["sensors"]
    out = sys.argv[2]
    above = float(sys.argv[3]) if len(sys.argv) > 3 else 80.0
    problems = []
    minutes, alerts, gaps, dups, late = {}, {}, {}, {}, {}
    for w in lines(out + "/minutes.jsonl"):
        k = (w["key"], str(w["start"]))
        if k in minutes:
            problems.append("window emitted twice: %s" % (k,))
        minutes[k] = w
    for w in lines(out + "/alerts.jsonl"):
        alerts.setdefault(w["key"], set()).add(str(w["start"]))
    for g in lines(out + "/gaps.jsonl"):
        if g["count"] != g["last"] - g["first"] + 1:
            problems.append("gap with a wrong count: %s" % g)
        gaps.setdefault(g["origin"], []).extend(range(g["first"], g["last"] + 1))
    for r in lines(out + "/duplicates.jsonl"):
        dups.setdefault(r["sensor"], []).append(r["seq"])
    for r in lines(out + "/late.jsonl"):
        late.setdefault(r["sensor"], []).append(r["seq"])
    want_windows = 0
    for s, e in expect.items():
        for start, w in e["windows"].items():
            want_windows += 1
            got = minutes.get((s, start))
            if not got:
                problems.append("%s: no window from %s" % (s, start))
            elif got["count"] != w["count"] or abs(got["value"] - w["avg"]) > 1e-9 * abs(w["avg"]):
                problems.append("%s window %s: want %d readings, avg %r; got %d, %r" %
                                (s, start, w["count"], w["avg"], got["count"], got["value"]))
        hot = {st for st, w in e["windows"].items() if w["avg"] > above}
        if hot != {st for st, w in e["windows"].items() if w["hot"]}:
            problems.append("%s: the generator's hot minutes do not average above %s" % (s, above))
        if alerts.get(s, set()) != hot:
            problems.append("%s: alerts for %s, want %s" % (s, sorted(alerts.get(s, set())), sorted(hot)))
        if sorted(gaps.get(s, [])) != e["missing"]:
            problems.append("%s: missing ids %s, want %s" % (s, sorted(gaps.get(s, [])), e["missing"]))
        if sorted(dups.get(s, [])) != sorted(e["duplicates"]):
            problems.append("%s: duplicates %s, want %s" % (s, sorted(dups.get(s, [])), e["duplicates"]))
        if sorted(late.get(s, [])) != sorted(e["late"]):
            problems.append("%s: late %s, want %s" % (s, sorted(late.get(s, [])), sorted(e["late"])))
    if len(minutes) != want_windows:
        problems.append("%d windows, want %d" % (len(minutes), want_windows))
    for p in problems[:20]:
        print(p, file=sys.stderr)
    n = lambda d: sum(len(v) for v in d.values())
    print("windows %d, alerts %d, missing %d, duplicates %d, late %d: %s" %
          (len(minutes), n(alerts), n(gaps), n(dups), n(late), "ok" if not problems else "WRONG"),
          file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
