"""Paced TCP sender for bench/kv_events.ts: the latency floor of a Deno reader on this machine,
without ZMQ. Sends COUNT frames of SIZE bytes (an 8-byte little-endian float64 send time in
seconds, then padding) at RATE frames/s to 127.0.0.1:PORT, sleeping (not spinning) until each
is due, as testdata/fake_vllm.py paces its batches.

Usage: tcp_send.py PORT COUNT RATE SIZE
"""
import socket
import struct
import sys
import time

port, count, rate, size = (int(a) for a in sys.argv[1:5])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
pad = b"x" * (size - 8)
start = time.time()
for i in range(count):
    wait = start + i / rate - time.time()
    if wait > 0:
        time.sleep(wait)
    s.sendall(struct.pack("<d", time.time()) + pad)
s.close()
