#!/usr/bin/env python3
"""A client of tcp_source for the tests: sends numbered JSON lines, keeps up to --window of them
unanswered, and after a lost connection (the node was killed) connects again and sends anew
every line it has no answer for. Shares no code with Troupe.

  python3 tcp_client.py PORT COUNT REPORT [--bad-every K] [--window W]

Line i (from 1) is {"id": i, "text": ...} with Unicode text, or every K-th a record with a
string id (which the source must refuse). REPORT gets {"errors": [i, ...], "resent": [i, ...],
"seqs": {i: seq}}: the lines answered with an error, those sent again after a lost connection,
and the sequence number each committed line got (the last answer, for one sent twice).
"""
import argparse
import json
import select
import socket
import time


def line(i, bad_every):
    if bad_every and i % bad_every == 0:
        return json.dumps({"id": "bad-%d" % i})
    return json.dumps({"id": i, "text": "ligne %d: é ü 東京 ✓" % i}, ensure_ascii=(i % 2 == 0))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("report")
    p.add_argument("--bad-every", type=int, default=0)
    p.add_argument("--window", type=int, default=200)
    args = p.parse_args()
    answered = {}  # i -> the answer
    resent = set()
    sent_ever = set()
    deadline = time.time() + 300
    while len(answered) < args.count:
        if time.time() > deadline:
            raise SystemExit("gave up: %d of %d answered" % (len(answered), args.count))
        try:
            s = socket.create_connection(("127.0.0.1", args.port), timeout=5)
        except OSError:
            time.sleep(0.05)  # the node is not up (yet, or again)
            continue
        s.setblocking(False)
        todo = [i for i in range(1, args.count + 1) if i not in answered]
        on_this = []  # line n of this connection is item on_this[n - 1]
        buf = b""
        at = 0
        pending = 0  # sent on this connection, not answered yet
        try:
            while len(answered) < args.count:
                while at < len(todo) and pending < args.window:
                    i = todo[at]
                    if i in sent_ever:
                        resent.add(i)
                    sent_ever.add(i)
                    s.sendall((line(i, args.bad_every) + "\n").encode())
                    on_this.append(i)
                    pending += 1
                    at += 1
                ready, _, _ = select.select([s], [], [], 10)
                if not ready:
                    raise OSError("no answer for 10 s")
                data = s.recv(65536)
                if not data:
                    raise OSError("closed")
                buf += data
                *whole, buf = buf.split(b"\n")
                for raw in whole:
                    a = json.loads(raw)
                    answered[on_this[a["line"] - 1]] = a
                    pending -= 1
        except (OSError, BlockingIOError):
            pass
        finally:
            s.close()
    report = {"errors": sorted(i for i, a in answered.items() if "error" in a),
              "resent": sorted(resent),
              "seqs": {str(i): a["seq"] for i, a in answered.items() if "seq" in a}}
    with open(args.report, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
