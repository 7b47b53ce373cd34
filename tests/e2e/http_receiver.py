#!/usr/bin/env python3
"""The server an http_sink posts to, for e2e_http_sink_test.cpp (it shares no code with Troupe).

  http_receiver.py OUT_DIR [--unavailable N] [--token T]

Listens on 127.0.0.1 on a free port and writes the port to OUT_DIR/port once it listens. Every
POST is read whole, parsed with Python's json module (a JSON object, or JSON lines for
application/x-ndjson), and answered:
  - 401 when --token is given and the request's Authorization is not "Bearer T";
  - 503 (Retry-After: 0) for the first N requests with --unavailable N;
  - 500 "poison refused" when a record's "text" holds the word poison;
  - 400 with the parser's message when the body is not JSON;
  - else 200, after appending one line per request to OUT_DIR/received.jsonl:
    {"key": <Idempotency-Key>, "type": <Content-Type>, "records": [<the parsed records>]}
    (appended and flushed before the answer, so a line there is a request the sink saw answered
    200, or would have, had it not been killed).
Runs until killed.
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out_dir = sys.argv[1]
args = sys.argv[2:]
unavailable = int(args[args.index("--unavailable") + 1]) if "--unavailable" in args else 0
token = args[args.index("--token") + 1] if "--token" in args else None
lock = threading.Lock()
seen = 0
log = open(os.path.join(out_dir, "received.jsonl"), "a", encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the sink asks
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def answer(self, status, text=""):
        body = text.encode("utf-8")
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
        if token is not None and self.headers.get("Authorization") != "Bearer " + token:
            return self.answer(401, "who are you?")
        with lock:
            seen += 1
            busy = seen <= unavailable
        if busy:
            return self.answer(503, "not yet")
        kind = self.headers.get("Content-Type", "")
        try:
            if kind.startswith("application/x-ndjson"):
                records = [json.loads(line) for line in body.splitlines() if line]
            else:
                records = [json.loads(body)]
        except ValueError as e:
            return self.answer(400, "not JSON: %s" % e)
        for r in records:
            text = r.get("payload", r).get("text", "") if isinstance(r, dict) else ""
            if "poison" in text:
                return self.answer(500, "poison refused")
        line = json.dumps({"key": self.headers.get("Idempotency-Key"), "type": kind,
                           "records": records}, ensure_ascii=False)
        with lock:
            log.write(line + "\n")
            log.flush()
        self.answer(200, "ok")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(out_dir, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out_dir, "port.tmp"), os.path.join(out_dir, "port"))
server.serve_forever()
