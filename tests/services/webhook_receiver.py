#!/usr/bin/env python3
"""A merchant's webhook endpoint for tests, written apart from the C signer.

Verifies every delivery as docs/design/orchestration.md tells merchants to:
Paywire-Signature "t=<unix>,v1=<hex>[,v1=<hex>]" where one v1 must equal
HMAC-SHA256(secret, t + "." + raw body), t within the tolerance of our clock,
and Paywire-Event-Id equal to the body's "id". Answers 400 to a bad
delivery, 503 to the first --fail-first attempts of each event (a receiver
that is down), 200 otherwise. One line per request in --log:
  ok <event id> <type> <payment id>   verified and accepted (the first time)
  dup <event id> <type> <payment id>  verified, seen before: answered 200, not processed again
  busy <event id>           verified, answered 503
  bad <reason>              refused
The secrets are read from --secret-file at each request (it exists only once
an endpoint was created, after this server started), one per line: a
delivery signed with any of them is accepted, so one receiver serves the
endpoints of several merchants (the local stack's demo adds one per run).
GET /healthz answers 200 (scripts/stack status).
The events an earlier run of the receiver accepted ("ok" lines already in --log)
count as seen at its start, as a merchant's de-duplication store would keep
them: a receiver killed and started again (tests/faults) answers their
repeats "dup".
With --control-file (tests/faults), the file's content at each request delays
deliveries: "fail" answers 500 to every verified delivery (logged "busy"),
"slow MS" holds each one MS milliseconds before handling it as usual; absent
or anything else: normal.
"""
import argparse
import hashlib
import hmac
import http.server
import json
import os
import threading
import time


def parse_signature(header):
    stamp, macs = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1":
            macs.append(value)
    return stamp, macs


class Receiver(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def record(self, line):
        with self.server.lock, open(self.server.args.log, "a") as f:
            f.write(line + "\n")

    def answer(self, code):
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def refuse(self, reason):
        self.record("bad " + reason)
        self.answer(400)

    def control(self):
        if not self.server.args.control_file:
            return []
        try:
            with open(self.server.args.control_file) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        stamp, macs = parse_signature(self.headers.get("paywire-signature", ""))
        if stamp is None or not stamp.isdigit() or not macs:
            return self.refuse("no-signature")
        if abs(time.time() - int(stamp)) > self.server.args.tolerance:
            return self.refuse("stale-timestamp")
        try:
            with open(self.server.args.secret_file) as f:
                secrets = [line.strip().encode() for line in f if line.strip()]
        except FileNotFoundError:
            return self.refuse("no-secret")
        wants = [hmac.new(s, stamp.encode() + b"." + body, hashlib.sha256).hexdigest() for s in secrets]
        if not any(hmac.compare_digest(w, m) for w in wants for m in macs):
            return self.refuse("signature-mismatch")
        try:
            event = json.loads(body)
        except ValueError:
            return self.refuse("not-json")
        event_id = self.headers.get("paywire-event-id", "")
        if event.get("id") != event_id or not event_id.startswith("evt_"):
            return self.refuse("event-id-mismatch")
        with self.server.lock:
            seen = self.server.attempts.get(event_id, 0)
            self.server.attempts[event_id] = seen + 1
        mode = self.control()
        if mode[:1] == ["fail"]:
            self.record("busy " + event_id)
            return self.answer(500)
        if mode[:1] == ["slow"] and len(mode) > 1 and mode[1].isdigit():
            time.sleep(int(mode[1]) / 1000.0)
        if seen < self.server.args.fail_first:
            self.record("busy " + event_id)
            return self.answer(503)
        with self.server.lock:
            first = event_id not in self.server.accepted
            self.server.accepted.add(event_id)
        # At least once on the wire: a repeat is answered 200 and not processed again.
        payment = (event.get("data") or {}).get("payment_id", "-")
        self.record(("ok %s %s %s" if first else "dup %s %s %s") % (event_id, event.get("type", ""), payment))
        self.answer(200)

    def do_GET(self):
        self.answer(200 if self.path == "/healthz" else 404)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--secret-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--control-file", default="", help="fail | slow MS (see above)")
    p.add_argument("--tolerance", type=int, default=300)
    p.add_argument("--port", type=int, default=0, help="0: any free port (written to --port-file)")
    args = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    server.args, server.lock, server.attempts = args, threading.Lock(), {}
    server.accepted = set()
    open(args.log, "a").close()
    with open(args.log) as f:
        server.accepted.update(x.split()[1] for x in f if x.startswith("ok ") and len(x.split()) > 1)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
