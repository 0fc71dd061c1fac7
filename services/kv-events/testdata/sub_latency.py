"""Reference subscriber for bench/kv_events.ts: a pyzmq SUB that decodes each batch's timestamp
and reports publish-to-received latency, to compare our ingest with libzmq on the same machine.

Usage: sub_latency.py PUB_PORT COUNT [SKIP]; prints "ready" once connected, then after COUNT
messages (or 30 s) a JSON line {"n", "p50_us", "p99_us", "p99_9_us"} over all but the first SKIP.
"""
import json
import math
import sys
import time

import msgpack
import zmq

port, count = int(sys.argv[1]), int(sys.argv[2])
skip = int(sys.argv[3]) if len(sys.argv) > 3 else 0
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.RCVHWM, 1_000_000)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.connect(f"tcp://127.0.0.1:{port}")
print("ready", flush=True)
lat = []
deadline = time.time() + 30
while len(lat) < count and time.time() < deadline:
    if not sub.poll(100):
        continue
    _topic, _seq, payload = sub.recv_multipart()
    ts = msgpack.unpackb(payload)[0]
    lat.append((time.time() - ts) * 1e6)
lat = sorted(lat[skip:])


def pick(p):
    if not lat:
        return -1
    return lat[min(len(lat) - 1, max(0, math.ceil(len(lat) * p / 100) - 1))]


print(json.dumps({"n": len(lat), "p50_us": pick(50), "p99_us": pick(99), "p99_9_us": pick(99.9)}),
      flush=True)
