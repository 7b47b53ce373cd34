#!/usr/bin/env python3
"""Checks a report of apps/nightly against sqlite3 running the same aggregation in SQL.

  python3 apps/nightly/check.py sales/2026-12-03.jsonl reports/2026-12-03

The oracle is the sqlite3 program: it imports the sales file line by line and sums, per store,
the sales whose line is valid JSON with a text store and an integer amount in cents. Every
store's revenue and number of sales must match, each store once. Exit status 0 when they do.
"""
import json
import subprocess
import sys

SQL = """
SELECT json_extract(line, '$.store') AS store,
       sum(json_extract(line, '$.cents')) AS revenue, count(*) AS sales
FROM raw
WHERE json_valid(line) AND json_type(line, '$.store') = 'text'
  AND json_type(line, '$.cents') = 'integer'
GROUP BY 1 ORDER BY 1;
"""


def oracle(sales_file):
    out = subprocess.run(
        ["sqlite3", ":memory:", "CREATE TABLE raw(line TEXT);", ".mode ascii",
         '.separator "\\037" "\\n"', ".import '%s' raw" % sales_file.replace("'", "''"),
         ".mode json", SQL], check=True, capture_output=True, text=True).stdout
    return {r["store"]: (r["revenue"], r["sales"]) for r in json.loads(out or "[]")}


def report(path, problems):
    got = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f.read().splitlines():
                r = json.loads(line)
                if r["store"] in got:
                    problems.append("%s: store %r twice" % (path, r["store"]))
                got[r["store"]] = r["value"]
    except FileNotFoundError:
        problems.append("%s: missing" % path)
    return got


def main():
    want = oracle(sys.argv[1])
    problems = []
    revenue = report(sys.argv[2] + "/revenue.jsonl", problems)
    sales = report(sys.argv[2] + "/sales.jsonl", problems)
    for store, (r, n) in sorted(want.items()):
        if revenue.get(store) != r:
            problems.append("%s: revenue %s, sqlite3 says %s" % (store, revenue.get(store), r))
        if sales.get(store) != n:
            problems.append("%s: %s sales, sqlite3 says %s" % (store, sales.get(store), n))
    for store in sorted(set(revenue) | set(sales)):
        if store not in want:
            problems.append("%r is in the report, not in the sales" % store)
    for p in problems[:20]:
        print(p, file=sys.stderr)
    print("%d stores, %d sales: %s" % (len(want), sum(n for _, n in want.values()),
                                       "ok" if not problems else "WRONG"), file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
