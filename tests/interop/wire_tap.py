"""A relay between an interop client and its server that reads the server's gRPC messages.

grpcio does not show a received message's compressed flag, so the interop
client puts this relay in front of the server for the compression cases: it
forwards bytes both ways and parses what the server sends (HTTP/2 frames, then
the gRPC length-prefixed messages in each stream's DATA), keeping each
message's compressed flag and length as they were on the wire. With TLS it
terminates the client's TLS with the test server certificate and opens its own
TLS connection to the server (ALPN h2 on both sides), so it sees plaintext.
"""
import select
import socket
import ssl
import struct
import threading

DATA, PADDED = 0x0, 0x8


class ServerMessages:
    """The gRPC messages a server sent, per HTTP/2 stream: [(compressed_flag, length), ...]."""

    def __init__(self):
        self.buf = b""
        self.data = {}  # stream id -> DATA bytes not yet split into messages
        self.streams = {}  # stream id -> [(flag, length)]
        self.lock = threading.Lock()

    def feed(self, chunk):
        self.buf += chunk
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            if ftype == DATA:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                self.messages(sid, payload)

    def messages(self, sid, payload):
        pending = self.data.get(sid, b"") + payload
        while len(pending) >= 5:
            n = struct.unpack(">I", pending[1:5])[0]
            if len(pending) < 5 + n:
                break
            with self.lock:
                self.streams.setdefault(sid, []).append((pending[0], n))
            pending = pending[5 + n:]
        self.data[sid] = pending

    def all(self):
        with self.lock:
            return [list(v) for v in self.streams.values()]


class WireTap:
    """Listens on 127.0.0.1 (address); relays each connection to server (host, port)."""

    def __init__(self, server, tls=None):
        # tls: None for h2c, else (ca_file, cert_file, key_file, server_name)
        self.server, self.tls = server, tls
        self.seen = ServerMessages()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.address = self.listener.getsockname()
        self.threads = []
        self.closing = False
        t = threading.Thread(target=self.accept, daemon=True)
        t.start()

    def accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self.relay, args=(client,), daemon=True)
            t.start()
            self.threads.append(t)

    def wrap(self, client):
        upstream = socket.create_connection(self.server)
        if self.tls is None:
            return client, upstream
        ca, cert, key, name = self.tls
        inbound = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        inbound.load_cert_chain(cert, key)
        inbound.set_alpn_protocols(["h2"])
        outbound = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        outbound.load_verify_locations(ca)
        outbound.set_alpn_protocols(["h2"])
        return (inbound.wrap_socket(client, server_side=True),
                outbound.wrap_socket(upstream, server_hostname=name))

    def relay(self, client):
        try:
            a, b = self.wrap(client)
        except (OSError, ssl.SSLError):
            client.close()
            return
        peers = {a: b, b: a}
        try:
            while True:
                ready = [s for s in peers if isinstance(s, ssl.SSLSocket) and s.pending()]
                if not ready:
                    ready, _, _ = select.select(list(peers), [], [], 30)
                    if not ready:
                        return
                for s in ready:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    if s is b:
                        self.seen.feed(chunk)
                    peers[s].sendall(chunk)
        except (OSError, ssl.SSLError):
            return
        finally:
            a.close()
            b.close()

    def close(self):
        self.closing = True
        self.listener.close()
