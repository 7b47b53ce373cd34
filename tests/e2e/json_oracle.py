#!/usr/bin/env python3
"""The JSON end-to-end tests' input and oracle (tests/e2e/e2e_json_test.cpp), in plain Python:
it shares no code with troupe.

  json_oracle.py generate INPUT COUNT SEED [--clean]
      Writes COUNT records as JSON lines, alternately with json.dumps' defaults (ensure_ascii)
      and with ensure_ascii=False: accents, CJK, emoji (surrogate pairs when escaped), quotes,
      backslashes, control characters, 64-bit extremes. The first line starts with a UTF-8
      byte-order mark. Unless --clean, hostile lines are mixed in; INPUT.hostile lists them as
      "line<TAB>phrase the reason must contain".

  json_oracle.py check INPUT OUTPUT BAD_LINES
      Decides on its own which lines of INPUT are valid records of the schema below and what
      each holds, then checks that OUTPUT has exactly the valid ones, in order, with identical
      values (fields the line lacks or gives as null at their defaults). Writes the numbers of
      the invalid lines to BAD_LINES, one a line. Exit 0 when OUTPUT is right, 1 (with the
      reasons on stderr) when not.

The schema (the test writes it as Rec in rec.capnp):
  id UInt64, name Text, note Text, big Int64, ubig UInt64, ratio Float64, small Int16,
  tags List(Text), ok Bool
"""
import json
import math
import random
import sys

FIELDS = {
    "id": "uint64", "name": "text", "note": "text", "big": "int64", "ubig": "uint64",
    "ratio": "float64", "small": "int16", "tags": "texts", "ok": "bool",
}
RANGES = {"uint64": (0, 2**64 - 1), "int64": (-2**63, 2**63 - 1), "int16": (-2**15, 2**15 - 1)}
DEFAULTS = {"uint64": 0, "int64": 0, "int16": 0, "text": "", "float64": 0.0, "texts": [],
            "bool": False}
BOM = b"\xef\xbb\xbf"

PIECES = ["Jos\u00e9", "Zo\u00eb", "na\u00efve", "\u4e2d\u6587", "\u65e5\u672c\u8a9e",
          "\U0001F600", "\U0001F389\U0001F44D", "\"quoted\"", "back\\slash", "tab\t", "nl\n",
          "\x00", "\x01\x1f", "\x7f", "\u2028", "plain", " ", "/", "\ud7ff\ue000", "\U0010FFFF",
          "caf\u00e9 \u00e0 la cr\u00e8me", "\u00a0"]


def record(rnd, i):
    r = {"id": i}
    if rnd.random() < 0.9:
        r["name"] = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 5)))
    if rnd.random() < 0.5:
        r["note"] = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 3)))
    r["big"] = rnd.choice([-2**63, 2**63 - 1, 0, -1, rnd.randint(-2**63, 2**63 - 1)])
    r["ubig"] = rnd.choice([2**64 - 1, 0, 2**53 + 1, rnd.randint(0, 2**64 - 1)])
    if rnd.random() < 0.8:
        r["ratio"] = rnd.choice([0.1, -2.5, 1e-300, 1.7976931348623157e308, 5e-324, 3.0,
                                 rnd.random() * 1e6, -0.0])
    if rnd.random() < 0.7:
        r["small"] = rnd.choice([-32768, 32767, rnd.randint(-100, 100)])
    if rnd.random() < 0.6:
        r["tags"] = [rnd.choice(PIECES) for _ in range(rnd.randint(0, 3))]
    if rnd.random() < 0.5:
        r["ok"] = rnd.random() < 0.5
    if rnd.random() < 0.1:
        r["name"] = None
    if rnd.random() < 0.1:
        r["extra"] = {"ignored": [1, 2.5, None, "x\u00e9"], "deep": {"a": True}}
    return r


HOSTILE = [  # (bytes of the line, phrase the dead letter's reason must contain)
    (b'{"id": 5, "name": "bad \xff byte"}', "invalid UTF-8 at byte 23"),
    (b'{"id": 6, "name": "\xc3("}', "invalid UTF-8 at byte 19"),
    (b'{"id": 7, "id": 8}', "key 'id' appears twice"),
    (b'{"id": "9"}', "field 'id': expected an integer, found a string"),
    (b'{"id": 10, "name": 5}', "field 'name': expected a string, found a number"),
    (b'{"id": 11, "small": 40000}', "field 'small': 40000 is out of range for Int16"),
    (b'{"id": 12, "ubig": 18446744073709551616}', "field 'ubig': 18446744073709551616 is out of range"),
    (b'{"id": 13, "big": -9223372036854775809}', "field 'big': -9223372036854775809 is out of range"),
    (b'{"id": 14, "ratio": "x"}', "field 'ratio': expected a number, found a string"),
    (b'{"id": 15, "tags": ["a", 1]}', "field 'tags[1]': expected a string, found a number"),
    (b'{"id": 16, "ok": "yes"}', "field 'ok': expected true or false, found a string"),
    (b'{"id": 1.5}', "field 'id': expected an integer, found 1.5"),
    (b'', "no JSON object"),
    (b'   ', "no JSON object"),
    (b'{"id": 17} trailing', "after the end of the object"),
    (b'[1, 2]', "expected a JSON object, found an array"),
    (b'"just a string"', "expected a JSON object, found a string"),
    (b'{"id": 18, "name": "\\ud800"}', "not followed by a low surrogate"),
    (b'{"id": 19, "name": "\\udc00"}', "lone low surrogate"),
    (b'{"id": 20, "name": "raw \x01 control"}', "control character"),
    (b'{"id": 21, "ratio": NaN}', "at byte"),
    (b'{"id": 22, "name": "unclosed}', "not closed"),
    (b'{"id": 23,}', "expected a key"),
    (b'{"id": 24, "extra": [1,,2]}', "expected a value"),
]


def generate(path, count, seed, clean):
    rnd = random.Random(seed)
    lines, hostile = [], []
    slots = set() if clean else set(rnd.sample(range(2, count + len(HOSTILE)), len(HOSTILE)))
    queue = list(HOSTILE)
    i = 0
    while i < count or (queue and not clean):
        n = len(lines) + 1
        if n in slots and queue:
            raw, phrase = queue.pop(0)
            lines.append(raw)
            hostile.append((n, phrase))
            continue
        i += 1
        r = record(rnd, 1000 + i)
        text = json.dumps(r) if i % 2 else json.dumps(r, ensure_ascii=False)
        raw = text.encode("utf-8")
        if n == 1:
            raw = BOM + raw
        if rnd.random() < 0.05:
            raw += b"\r"  # a CRLF line
        lines.append(raw)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    with open(path + ".hostile", "w") as f:
        for n, phrase in hostile:
            f.write(f"{n}\t{phrase}\n")


class Bad(Exception):
    pass


def no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise Bad("duplicate key")
        seen[k] = v
    return seen


def reject_constant(name):
    raise Bad("not JSON: " + name)


def utf8_strings(v):
    """Every string inside v can be written as UTF-8 (no lone surrogates)."""
    if isinstance(v, str):
        v.encode("utf-8")
    elif isinstance(v, list):
        for x in v:
            utf8_strings(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            utf8_strings(k)
            utf8_strings(x)


def expected_record(raw, n):
    """The record line n must become, or None when the line is not one."""
    if n == 1 and raw.startswith(BOM):
        raw = raw[3:]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates,
                         parse_constant=reject_constant)
        utf8_strings(obj)
    except (ValueError, UnicodeError, Bad):
        return None
    if not isinstance(obj, dict):
        return None
    out = dict((k, DEFAULTS[kind]) for k, kind in FIELDS.items())
    for k, v in obj.items():
        kind = FIELDS.get(k)
        if kind is None or v is None:
            continue
        if kind in RANGES:
            lo, hi = RANGES[kind]
            if type(v) is not int or not lo <= v <= hi:
                return None
        elif kind == "float64":
            if type(v) not in (int, float) or not math.isfinite(v):
                return None
            v = float(v)
        elif kind == "text" and type(v) is not str:
            return None
        elif kind == "bool" and type(v) is not bool:
            return None
        elif kind == "texts":
            if type(v) is not list or any(x is not None and type(x) is not str for x in v):
                return None
            v = ["" if x is None else x for x in v]
        out[k] = v
    return out


def same(want, got):
    if set(got) != set(FIELDS):
        return False
    for k, kind in FIELDS.items():
        a, b = want[k], got[k]
        if kind == "float64":
            if type(b) not in (int, float) or float(b) != a or math.copysign(1, float(b)) != math.copysign(1, a):
                return False
        elif type(a) is not type(b) or a != b:
            return False
    return True


def check(input_path, output_path, bad_path):
    with open(input_path, "rb") as f:
        data = f.read()
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    want, bad = [], []
    for n, raw in enumerate(raw_lines, 1):
        r = expected_record(raw, n)
        if r is None:
            bad.append(n)
        else:
            want.append(r)
    with open(bad_path, "w") as f:
        f.write("".join(f"{n}\n" for n in bad))
    with open(output_path, "rb") as f:
        out = f.read()
    problems = []
    try:
        text = out.decode("utf-8")
    except UnicodeError as e:
        print(f"the output is not UTF-8: {e}", file=sys.stderr)
        return 1
    got_lines = text.split("\n")
    if got_lines[-1] != "":
        problems.append("the output does not end with a newline")
    got_lines = got_lines[:-1]
    if len(got_lines) != len(want):
        problems.append(f"{len(got_lines)} output lines, {len(want)} valid input lines")
    for i, (w, line) in enumerate(zip(want, got_lines), 1):
        try:
            g = json.loads(line, object_pairs_hook=no_duplicates, parse_constant=reject_constant)
        except (ValueError, Bad) as e:
            problems.append(f"output line {i} is not strict JSON ({e}): {line!r}")
            continue
        if not same(w, g):
            problems.append(f"output line {i}: {line!r}\n  expected {w!r}")
        if len(problems) > 5:
            break
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(raw_lines)} input lines: {len(want)} valid, {len(bad)} invalid; "
          f"{len(got_lines)} output lines", file=sys.stderr)
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 5 and argv[1] == "generate":
        generate(argv[2], int(argv[3]), int(argv[4]), "--clean" in argv[5:])
        return 0
    if len(argv) == 5 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
