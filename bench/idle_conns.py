#!/usr/bin/python3
"""Holds N idle HTTP/2 connections to 127.0.0.1:PORT for SECONDS (bench/run's
"90 idle connections" scenario). Each sends the client preface and an empty
SETTINGS frame, ACKs what the server sends, and stays open."""
import select
import socket
import sys
import time

port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
settings_ack = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(preface + settings_ack)
    socks.append(s)
end = time.time() + secs
while time.time() < end:
    ready, _, _ = select.select(socks, [], [], 0.2)
    for s in ready:
        if not s.recv(65536):
            socks.remove(s)
for s in socks:
    s.close()
