#!/usr/bin/env python3
"""A producer that hands records to an http_source the way a careful client would, and keeps
its own account of them (the oracle of e2e_http_test.cpp; it shares no code with Troupe).

  http_client.py URL BODIES THREADS SEED OUT_DIR

Sends BODIES bodies of 1..20 JSON lines each, from THREADS threads over keep-alive connections.
Every body has an Idempotency-Key; a body is sent again (same key, same bytes) after any error,
refused connection or 5xx, with a growing delay, until it is answered 200 or 120 s pass. Lines
are written by Python's json.dumps, half of them with its default ensure_ascii (\\u escapes,
surrogate pairs for emoji), half as raw UTF-8.

Writes OUT_DIR/sent.jsonl (every record, as {"id":..,"text":..}) before sending anything, and
OUT_DIR/acked.jsonl (one line per answered body: key, record count, the answer) as answers come;
OUT_DIR/progress holds the number of bodies answered so far. Exit 0 when every body was answered.
"""
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

url, bodies, threads, seed, out_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), sys.argv[5]
target = urllib.parse.urlparse(url)
rng = random.Random(seed)
words = ["José", "Zoë", "naïve", "日本語", "emoji 🎉🚀", "tab\tquote\"back\\slash", "plain",
         "Ελληνικά", "\u2028line sep", "ß"]

plan = []  # (key, [record, ...])
next_id = 0
for b in range(bodies):
    records = []
    for _ in range(rng.randint(1, 20)):
        records.append({"id": next_id, "text": rng.choice(words) + " " + str(next_id)})
        next_id += 1
    plan.append(("body-%d-%d" % (seed, b), records))

with open(os.path.join(out_dir, "sent.jsonl"), "w", encoding="utf-8") as f:
    for _, records in plan:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

lock = threading.Lock()
answered = 0
failed = []
acked = open(os.path.join(out_dir, "acked.jsonl"), "w", encoding="utf-8")
todo = list(range(bodies))


def body_bytes(index):
    lines = [json.dumps(r, ensure_ascii=(r["id"] % 2 == 0)) for r in plan[index][1]]
    return ("\n".join(lines) + "\n").encode("utf-8")


def worker():
    global answered
    conn = None
    while True:
        with lock:
            if not todo:
                break
            index = todo.pop()
        key, records = plan[index]
        payload = body_bytes(index)
        deadline = time.monotonic() + 120
        delay = 0.05
        while True:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                conn.request("POST", target.path or "/", body=payload,
                             headers={"Idempotency-Key": key,
                                      "Content-Type": "application/x-ndjson"})
                resp = conn.getresponse()
                text = resp.read().decode("utf-8")
                if resp.status == 200:
                    answer = json.loads(text)
                    with lock:
                        acked.write(json.dumps({"key": key, "records": len(records),
                                                "answer": answer}) + "\n")
                        acked.flush()
                        answered += 1
                        with open(os.path.join(out_dir, "progress.tmp"), "w") as p:
                            p.write(str(answered))
                        os.replace(os.path.join(out_dir, "progress.tmp"),
                                   os.path.join(out_dir, "progress"))
                    break
                if resp.status < 500:
                    with lock:
                        failed.append("%s: %d %s" % (key, resp.status, text))
                    break
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            if time.monotonic() > deadline:
                with lock:
                    failed.append("%s: no answer within 120 s" % key)
                break
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


pool = [threading.Thread(target=worker) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
acked.close()
for f in failed:
    print(f, file=sys.stderr)
sys.exit(1 if failed else 0)
