#!/usr/bin/env python3
"""Load generator for apps/sensors: posts sensor readings with sequence ids over HTTP and
injects what networks do to them, at the rates given. Shares no code with Troupe.

  python3 apps/sensors/loadgen.py --url http://127.0.0.1:8090/ --expect expected.json

Each sensor sends one reading per second of event time (seq 0, 1, 2, ...), in step with the
other sensors, in bodies of JSON lines. Per sensor it injects:
  gaps        ids never sent
  duplicates  ids sent twice
  reordering  ids swapped with one up to 3 places later
  late        ids held back and sent after everything else (after their gap was given up)
  hot minutes minutes whose readings are around 100 instead of around 20 (anomalies)
The last 24 ids of each sensor are sent plainly, so every gap is followed by enough readings to
be given up (the app's max_pending is 16). --expect writes what the app must report: the gaps,
duplicates and late ids per sensor, and every window's count and average, with the hot ones.
"""
import argparse
import http.client
import json
import random
import sys
import time
import urllib.parse

BASE = 1_750_000_020_000 - 1_750_000_020_000 % 60000  # a minute boundary, in the past


def plan(args):
    rng = random.Random(args.seed)
    sensors = ["sensor-%02d" % i for i in range(args.sensors - 2)] + ["capteur-é", "датчик-7"]
    minutes = args.readings // 60 + 1
    hot = {(s, m) for s in sensors for m in range(minutes) if rng.random() < args.hot_rate}
    streams, late_posts, expect = {}, [], {"sensors": {}}
    for s in sensors:
        sent, gaps, dups, late = [], [], [], []
        plain_from = args.readings - 24
        for i in range(args.readings):
            r = rng.random()
            if i > 0 and i < plain_from and r < args.gap_rate:
                gaps.append(i)
                continue
            if i > 0 and i < plain_from and r < args.gap_rate + args.late_rate:
                late.append(i)
                continue
            sent.append(i)
            if i < plain_from and rng.random() < args.dup_rate:
                sent.append(i)
                dups.append(i)
        slots = list(sent)  # the id each slot would carry in order: when it is sent
        for j in range(len(sent) - 30):
            if rng.random() < args.reorder_rate:
                k = j + rng.randint(1, 3)
                sent[j], sent[k] = sent[k], sent[j]
        values = {}
        for i in range(args.readings):
            base = 100.0 if (s, i // 60) in hot else 20.0
            values[i] = round(base + rng.uniform(-5, 5), 3)
        streams[s] = [(slot, i, values[i]) for slot, i in zip(slots, sent)]
        late_posts += [(s, i, values[i]) for i in late]
        windows = {}
        for i in range(args.readings):
            if i in gaps or i in late:
                continue
            w = windows.setdefault(i // 60, [0.0, 0])
            w[0] += values[i]
            w[1] += 1
        expect["sensors"][s] = {
            "missing": sorted(gaps + late), "duplicates": dups, "late": late,
            "windows": {str(BASE + m * 60000): {"count": n, "avg": total / n,
                                                 "hot": (s, m) in hot}
                        for m, (total, n) in windows.items()}}
    # The sensors send in step, as real ones do in real time: a slot meant for id i goes out
    # with the other sensors' slots for i (so gaps and repeats do not make one sensor drift
    # ahead of another in event time, which would make the app's windows close on the laggard).
    n = {s: k for k, s in enumerate(sensors)}
    slots = sorted((slot, n[s], j, s, i, v) for s in sensors
                   for j, (slot, i, v) in enumerate(streams[s]))
    order = [(s, i, v) for _, _, _, s, i, v in slots]
    rng.shuffle(late_posts)
    return order, late_posts, expect


def line(s, i, v):
    return json.dumps({"sensor": s, "seq": i, "at": BASE + i * 1000, "value": v},
                      ensure_ascii=False)


class poster:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port or 80, u.path or "/"
        self.conn = None

    def post(self, lines, key):
        body = ("\n".join(lines) + "\n").encode("utf-8")
        for attempt in range(200):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request("POST", self.path, body,
                                  {"Content-Type": "application/x-ndjson", "Idempotency-Key": key})
                resp = self.conn.getresponse()
                text = resp.read()
                if resp.status == 200:
                    return
                if resp.status not in (503, 504):
                    sys.exit("POST %s: %d %s" % (key, resp.status, text[:300]))
                time.sleep(float(resp.getheader("Retry-After", "1")) / 10)
            except (ConnectionError, OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
                time.sleep(0.1)  # the node is not up yet, or restarting
        sys.exit("POST %s: gave up after 200 attempts" % key)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8090/")
    p.add_argument("--sensors", type=int, default=10)
    p.add_argument("--readings", type=int, default=600, help="per sensor")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gap-rate", type=float, default=0.01)
    p.add_argument("--late-rate", type=float, default=0.005)
    p.add_argument("--dup-rate", type=float, default=0.02)
    p.add_argument("--reorder-rate", type=float, default=0.02)
    p.add_argument("--hot-rate", type=float, default=0.1)
    p.add_argument("--body", type=int, default=100, help="readings per POST")
    p.add_argument("--expect", help="write what the app must report here")
    args = p.parse_args()
    order, late, expect = plan(args)
    if args.expect:
        with open(args.expect, "w", encoding="utf-8") as f:
            json.dump(expect, f, ensure_ascii=False)
    out = poster(args.url)
    for n in range(0, len(order), args.body):
        out.post([line(*r) for r in order[n:n + args.body]], "main-%d-%d" % (args.seed, n))
    for n in range(0, len(late), args.body):
        out.post([line(*r) for r in late[n:n + args.body]], "late-%d-%d" % (args.seed, n))
    print("posted %d readings and %d late ones" % (len(order), len(late)), file=sys.stderr)


if __name__ == "__main__":
    main()
