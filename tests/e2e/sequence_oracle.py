#!/usr/bin/env python3
"""Input and oracle for the sequence stage's end-to-end tests. Shares no code with Troupe.

  sequence_oracle.py generate IN.jsonl SEED [PER_SENSOR]
      writes readings of several sensors with sequence ids, interleaved, with duplicates,
      dropped ids, local reordering and a few records moved far back (late)
  sequence_oracle.py check IN.jsonl OUT_DIR MAX_PENDING [WINDOW]
      replays the stage's rules on the input (first_seq 0, gap_timeout never reached) and
      compares with OUT_DIR/{out,missing,late,duplicates}.jsonl, per sensor, in order

The rules (actors/sequence.hpp, README "Sequence ids"): per origin, `next` starts at 0; an id
below next is late if its gap was skipped (or it is more than WINDOW below), else a duplicate;
an id above next is held back (a second copy of a held id is a duplicate), and once more than
MAX_PENDING are held the gap before the first held id is skipped; an id equal to next is
released with every held id that follows it. When the input ends every gap is skipped.
"""
import json
import random
import sys

SENSORS = ["capteur-é-%d" % i for i in range(4)] + ["датчик-%d" % i for i in range(4)] + \
          ["センサー-%d" % i for i in range(4)]


def generate(path, seed, per_sensor):
    rng = random.Random(seed)
    streams = {}
    for s in SENSORS:
        ids = []
        for i in range(per_sensor):
            r = rng.random()
            if r < 0.01:
                continue                      # never sent: a gap
            ids.append(i)
            if r < 0.02:
                ids.append(i)                 # sent twice at once
        # local reordering: swap neighbours within 4 places
        for j in range(len(ids) - 1):
            if rng.random() < 0.02:
                k = min(len(ids) - 1, j + rng.randint(1, 4))
                ids[j], ids[k] = ids[k], ids[j]
        # far moves: a few ids arrive 40 places later (after their gap was given up on)
        for _ in range(per_sensor // 200):
            j = rng.randrange(len(ids) - 50)
            ids.insert(j + 40, ids.pop(j))
        # late repeats of early ids
        for _ in range(per_sensor // 300):
            j = rng.randrange(len(ids) // 2)
            ids.insert(rng.randrange(j, len(ids)), ids[j])
        streams[s] = ids
    order = [s for s in SENSORS for _ in streams[s]]
    rng.shuffle(order)
    at = {s: 0 for s in SENSORS}
    with open(path, "w", encoding="utf-8") as f:
        for s in order:
            i = streams[s][at[s]]
            at[s] += 1
            rec = {"sensor": s, "seq": i, "value": round(rng.uniform(-40, 60), 3),
                   "note": "Jos\u00e9 \U0001F600 \"q\""}
            f.write(json.dumps(rec, ensure_ascii=rng.random() < 0.5) + "\n")


def oracle(path, max_pending, window):
    state = {}
    want = {k: {} for k in ("out", "missing", "late", "duplicates")}

    def put(kind, sensor, item):
        want[kind].setdefault(sensor, []).append(item)

    def release(s, st):
        while st["next"] in st["held"]:
            st["held"].remove(st["next"])
            put("out", s, st["next"])
            st["next"] += 1

    def skip_gap(s, st):
        first = min(st["held"])
        if first > st["next"]:
            put("missing", s, (st["next"], first - 1))
            st["skipped"].append((st["next"], first - 1))
            st["skipped"] = st["skipped"][-64:]
            st["next"] = first
        release(s, st)

    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            s, i = rec["sensor"], rec["seq"]
            st = state.setdefault(s, {"next": 0, "held": set(), "skipped": []})
            if i < st["next"]:
                late = any(a <= i <= b for a, b in st["skipped"]) or st["next"] - i > window
                put("late" if late else "duplicates", s, i)
            elif i > st["next"]:
                if i in st["held"]:
                    put("duplicates", s, i)
                else:
                    st["held"].add(i)
                    if len(st["held"]) > max_pending:
                        skip_gap(s, st)
            else:
                put("out", s, i)
                st["next"] += 1
                release(s, st)
    for s, st in state.items():
        while st["held"]:
            skip_gap(s, st)
    return want


def read_output(path, kind):
    got = {}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return got
    for line in text.splitlines():
        rec = json.loads(line)
        if kind == "missing":
            got.setdefault(rec["origin"], []).append((rec["first"], rec["last"]))
            if rec.get("count") != rec["last"] - rec["first"] + 1:
                print("missing record with a wrong count:", line, file=sys.stderr)
                sys.exit(1)
        else:
            if rec["note"] != "Jos\u00e9 \U0001F600 \"q\"":
                print("text changed on the way:", line, file=sys.stderr)
                sys.exit(1)
            got.setdefault(rec["sensor"], []).append(rec["seq"])
    return got


def check(path, out_dir, max_pending, window):
    want = oracle(path, max_pending, window)
    ok = True
    for kind in ("out", "missing", "late", "duplicates"):
        got = read_output("%s/%s.jsonl" % (out_dir, kind), kind)
        for s in sorted(set(want[kind]) | set(got)):
            w, g = want[kind].get(s, []), got.get(s, [])
            if w != g:
                ok = False
                at = next((j for j in range(min(len(w), len(g))) if w[j] != g[j]), min(len(w), len(g)))
                print("%s of %s: want %d, got %d; first difference at %d: want %s, got %s" %
                      (kind, s, len(w), len(g), at, w[at:at + 5], g[at:at + 5]), file=sys.stderr)
        print("%s: %d" % (kind, sum(len(v) for v in want[kind].values())), file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 2000)
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]),
              int(sys.argv[5]) if len(sys.argv) > 5 else 100000)
    else:
        sys.exit("usage: sequence_oracle.py generate|check ...")
