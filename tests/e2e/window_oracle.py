#!/usr/bin/env python3
"""Input and oracle for the window stage's end-to-end tests. Shares no code with Troupe.

  window_oracle.py generate IN.jsonl SEED N
      readings of several sensors with event times (`at`, ms) that mostly move forward, a few
      out of order within the allowed lateness, and a few far behind (late for every window)
  window_oracle.py check IN.jsonl TUMBLE.jsonl SLIDE.jsonl LATE.jsonl
      computes every window from the on-time readings and compares: `tumble` is 60 s tumbling
      windows, avg of value; `slide` is 60 s windows sliding by 20 s, count; late readings (which
      belong only to closed windows) must be in LATE, and in no window

The generator makes lateness independent of how keys are spread over partitions: an on-time
reading is within LATENESS of the largest time of the whole input so far (so of any partition's),
a late one is more than LATENESS + SIZE + SLIDE behind its own sensor's largest time.
"""
import json
import random
import sys

SIZE, SLIDE, LATENESS = 60000, 20000, 5000
SENSORS = ["s-%d" % i for i in range(6)] + ["capteur-é", "датчик"]


def generate(path, seed, n):
    rng = random.Random(seed)
    clock = 1_700_000_000_000
    largest, own = None, {}
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            s = rng.choice(SENSORS)
            clock += rng.randint(0, 400)
            r = rng.random()
            if r < 0.01 and s in own and own[s] - LATENESS - SIZE - SLIDE - 1 > 0:
                at = own[s] - LATENESS - SIZE - SLIDE - rng.randint(1, 100000)   # late
            elif r < 0.1 and largest is not None:
                at = largest - rng.randint(0, LATENESS - 1)                        # out of order
            else:
                at = clock
            largest = at if largest is None else max(largest, at)
            own[s] = max(own.get(s, at), at)
            f.write(json.dumps({"sensor": s, "at": at, "value": round(rng.uniform(-20, 40), 2)},
                               ensure_ascii=rng.random() < 0.5) + "\n")


def oracle(path):
    tumble, slide, late = {}, {}, []
    largest, own = None, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            s, at, v = rec["sensor"], rec["at"], rec["value"]
            if s in own and at < own[s] - LATENESS - SIZE - SLIDE:
                late.append((s, at))
                continue
            assert largest is None or at >= largest - LATENESS, line
            largest = at if largest is None else max(largest, at)
            own[s] = max(own.get(s, at), at)
            start = at - at % SIZE
            t = tumble.setdefault((s, start), [0.0, 0])
            t[0] += v
            t[1] += 1
            start = at - at % SLIDE
            while start > at - SIZE:
                slide[(s, start)] = slide.get((s, start), 0) + 1
                start -= SLIDE
    return tumble, slide, late


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f.read().splitlines()]


def check(path, tumble_path, slide_path, late_path):
    tumble, slide, late = oracle(path)
    ok = True

    def fail(*what):
        nonlocal ok
        ok = False
        print(*what, file=sys.stderr)

    got = {}
    for w in lines(tumble_path):
        k = (w["key"], w["start"])
        if k in got:
            fail("tumbling window emitted twice:", w)
        got[k] = w
        if w["end"] != w["start"] + SIZE:
            fail("tumbling window of the wrong size:", w)
    if set(got) != set(tumble):
        fail("tumbling windows: want %d, got %d; missing %s, extra %s" %
             (len(tumble), len(got), sorted(set(tumble) - set(got))[:3],
              sorted(set(got) - set(tumble))[:3]))
    for k, (total, n) in tumble.items():
        w = got.get(k)
        if w and (w["count"] != n or abs(w["value"] - total / n) > 1e-9 * max(1, abs(total / n))):
            fail("tumbling window %s: want avg %r of %d, got %r of %d" %
                 (k, total / n, n, w["value"], w["count"]))
    got = {}
    for w in lines(slide_path):
        k = (w["key"], w["start"])
        if k in got:
            fail("sliding window emitted twice:", w)
        got[k] = w["value"]
    if got != {k: float(v) for k, v in slide.items()}:
        diff = [k for k in set(got) | set(slide) if got.get(k) != slide.get(k)]
        fail("sliding windows: %d differ, e.g. %s: want %s, got %s" %
             (len(diff), diff[0], slide.get(diff[0]), got.get(diff[0])))
    got_late = sorted((r["sensor"], r["at"]) for r in lines(late_path))
    if got_late != sorted(late):
        fail("late: want %d, got %d" % (len(late), len(got_late)))
    print("tumbling %d, sliding %d, late %d" % (len(tumble), len(slide), len(late)),
          file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "check":
        check(*sys.argv[2:6])
    else:
        sys.exit("usage: window_oracle.py generate|check ...")
