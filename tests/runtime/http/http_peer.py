#!/usr/bin/env python3
"""The HTTP peer of http_test: a threaded HTTP/1.1 server on 127.0.0.1 (TLS with
--tls CERT KEY [--client-ca CA], which then requires a client certificate), printing
its port on stdout. Paths:
  /echo        answers 200 with "METHOD|x-test header|client cert CN|body"
  /status/N    answers N with body "status N"
  /slow        waits 3 s, then answers 200
  /big         answers 2 MiB
  /count       answers how many requests came before it
"""
import http.server
import socketserver
import ssl
import sys
import threading
import time

lock = threading.Lock()
seen = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        with lock:
            n = seen[0]
            seen[0] += 1
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/echo":
            cn = ""
            if isinstance(self.connection, ssl.SSLSocket):
                cert = self.connection.getpeercert()
                for rdn in (cert or {}).get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            cn = v
            head = "%s|%s|%s|" % (self.command, self.headers.get("x-test", ""), cn)
            self.reply(200, head.encode() + body)
        elif self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
            self.reply(code, b"status %d" % code)
        elif self.path == "/slow":
            time.sleep(3)
            self.reply(200, b"late")
        elif self.path == "/big":
            self.reply(200, b"x" * (2 << 20))
        elif self.path == "/count":
            self.reply(200, str(n).encode())
        else:
            self.reply(404, b"no such path")

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    args = sys.argv[1:]
    if args and args[0] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[1], args[2])
        if len(args) > 4 and args[3] == "--client-ca":
            ctx.load_verify_locations(args[4])
            ctx.verify_mode = ssl.CERT_REQUIRED
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
