#!/usr/bin/env python3
"""Writes a day of sales as JSON lines, as apps/nightly reads them. Shares no code with Troupe.

  python3 apps/nightly/make_sales.py --date 2026-12-03 --sales 20000 --out sales/

Store names are Unicode (half of them \\u-escaped, as Python's json.dumps writes by default);
--bad N adds N malformed lines (not JSON, an amount as a string, a missing store), which the app
dead-letters and the oracle (check.py, SQL in sqlite3) leaves out.
"""
import argparse
import json
import os
import random

STORES = ["Zürich Bahnhof", "São Paulo", "Łódź", "東京 渋谷", "Montréal", "Køge", "Ελλάδα 1",
          "İstanbul", "Jyväskylä", "Reykjavík", "Paris 11e", "Kraków Główny", "Αθήνα", "Dublin"]
PRODUCTS = ["café", "crème brûlée", "naïve tea", "pão de queijo", "smørrebrød", "baguette"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--date", required=True)
    p.add_argument("--sales", type=int, default=20000)
    p.add_argument("--bad", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="sales")
    args = p.parse_args()
    rng = random.Random(args.seed)
    lines = []
    for i in range(args.sales):
        sale = {"id": "%s-%07d" % (args.date, i), "store": rng.choice(STORES),
                "product": rng.choice(PRODUCTS), "cents": rng.randint(-2000, 250000),
                "at": "%sT%02d:%02d:%02d+01:00" % (args.date, rng.randrange(24),
                                                  rng.randrange(60), rng.randrange(60))}
        lines.append(json.dumps(sale, ensure_ascii=rng.random() < 0.5))
    bad = ['{"id": "torn", "store": "Dublin", "cen', '{"store": "Dublin", "cents": "1200"}',
           '{"id": "nostore", "cents": 500}', 'not json at all']
    for n in range(args.bad):
        lines.insert(rng.randrange(len(lines) + 1), bad[n % len(bad)])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.date + ".jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
