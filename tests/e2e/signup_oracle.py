#!/usr/bin/env python3
"""The sign-up app's oracle (apps/signup), written from the app's description alone.

  signup_oracle.py generate IN N SEED   writes N sign-up lines, some of them broken
  signup_oracle.py check IN OUT_DIR BAD
      checks the five output files against the input and writes the numbers of the lines that
      must be dead letters to BAD, one per line; exit 1 with the first difference
"""
import json
import os
import random
import sys

FIELDS = ("id", "email", "name", "opted_in", "channel")
NAMES = ["Ada Lovelace", "José Núñez", "Zoë Ægir", "李小龙", "Ольга Петрова", "Nguyễn Văn An",
         "Søren 🚀", "محمد علي", "Grace \"Amazing\" Hopper", "tab\tand\\backslash", "ʻOkina"]


def generate(path, n, seed):
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(1, n + 1):
            name = rnd.choice(NAMES)
            rec = {"id": rnd.randrange(2**64) if rnd.random() < 0.1 else i,
                   "email": name.split()[0].lower() + str(i) + "@example.org",
                   "name": name,
                   "opted_in": rnd.random() < 0.4,
                   "channel": rnd.choice(["email", "sms"])}
            if rnd.random() < 0.3:  # any key order
                items = list(rec.items())
                rnd.shuffle(items)
                rec = dict(items)
            r = rnd.random()
            if r < 0.01:
                line = json.dumps(rec)[:-3]  # cut short
            elif r < 0.02:
                del rec[rnd.choice(FIELDS)]
                line = json.dumps(rec)
            elif r < 0.03:
                rec["channel"] = rnd.choice(["pigeon", "Email", ""])
                line = json.dumps(rec)
            elif r < 0.035:
                rec["channel"] = rnd.randrange(2, 9)  # a number no enumerant has
                line = json.dumps(rec)
            elif r < 0.04:
                rec["opted_in"] = "yes"
                line = json.dumps(rec)
            elif r < 0.045:
                rec["id"] = str(rec["id"])
                line = json.dumps(rec)
            else:
                line = json.dumps(rec, ensure_ascii=rnd.random() < 0.5)
            out.write(line + "\n")


def valid(line):
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict) or any(rec.get(k) is None for k in FIELDS):
        return None
    if type(rec["id"]) is not int or not 0 <= rec["id"] < 2**64:
        return None
    if type(rec["email"]) is not str or type(rec["name"]) is not str:
        return None
    if type(rec["opted_in"]) is not bool or rec["channel"] not in ("email", "sms"):
        return None
    return {k: rec[k] for k in FIELDS}


def check(path, out_dir, bad_path):
    good, bad = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            rec = valid(line)
            if rec is None:
                bad.append(number)
            else:
                good.append(rec)
    with open(bad_path, "w") as f:
        f.writelines(f"{n}\n" for n in bad)
    expected = {
        "welcome.jsonl": good,
        "analytics.jsonl": good,
        "promotions.jsonl": [r for r in good if r["opted_in"]],
        "notify_email.jsonl": [r for r in good if r["channel"] == "email"],
        "notify_sms.jsonl": [r for r in good if r["channel"] == "sms"],
    }
    for name, want in expected.items():
        with open(os.path.join(out_dir, name), encoding="utf-8") as f:
            got = [json.loads(line) for line in f]
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            print(f"{name}: {len(got)} lines, expected {len(want)}; first difference at line "
                  f"{first + 1}: got {got[first] if first < len(got) else 'nothing'}, expected "
                  f"{want[first] if first < len(want) else 'nothing'}", file=sys.stderr)
            return 1
    print(f"signup oracle: {len(good)} valid sign-ups, {len(bad)} bad lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4]))
