"""A stand-in for a vLLM engine's KV event publisher, for kv-events' end-to-end tests.

Binds a PUB socket and a replay ROUTER socket as vLLM's ZmqEventPublisher does: each message is
[topic, 8-byte big-endian seq, msgpack KVEventBatch]; the ROUTER answers [id, "", start_seq] with
[id, "", seq, payload] for every buffered seq >= start_seq, then [id, "", -1 (8 bytes), ""].
Like vLLM's publisher it keeps what it sent in a deque, appended after each send: the bookkeeping
never sits between a batch's timestamp and its send (a dict here resized within that window, for
4 ms at 21,845 entries, which the bench then counted as publish-to-indexed latency).

Usage: fake_vllm.py PUB_PORT REPLAY_PORT TOPIC; prints "ready", then reads commands on stdin:
  publish FIRST COUNT [SKIP_FROM SKIP_TO]   publish batches FIRST..FIRST+COUNT-1; those in
                                            [SKIP_FROM, SKIP_TO] go to the replay buffer only
  blast FIRST COUNT BLOCKS RATE [CAPACITY]  COUNT batches of BLOCKS blocks each at RATE batches/s
                                            (0: as fast as possible), hashes made unique by seq;
                                            with CAPACITY, once the cache holds that many blocks
                                            each batch also evicts its BLOCKS oldest (BlockRemoved
                                            in the same batch, as a full vLLM cache does);
                                            prints "blasted SECONDS"
  quit
Batch seq n stores one block whose u64 hash is 2**63 + n (always >= 2^63), in GPU.
"""
import sys
import time
from collections import deque

import msgpack
import zmq

pub_port, replay_port, topic = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
pub.setsockopt(zmq.SNDHWM, 1_000_000)
pub.bind(f"tcp://127.0.0.1:{pub_port}")
router = ctx.socket(zmq.ROUTER)
router.bind(f"tcp://127.0.0.1:{replay_port}")
buffer = deque(maxlen=1_000_000)  # (seq, payload), in the order published
END = (-1).to_bytes(8, "big", signed=True)


def payload(n):
    event = ["BlockStored", [2**63 + n], None, list(range(16)), 16, None, "GPU"]
    return msgpack.packb([time.time(), [event]])


def serve_replays(timeout_ms):
    while router.poll(timeout_ms):
        ident, _, start = router.recv_multipart()
        s = int.from_bytes(start, "big")
        for n, body in buffer:
            if n >= s:
                router.send_multipart([ident, b"", n.to_bytes(8, "big"), body])
        router.send_multipart([ident, b"", END, b""])
        timeout_ms = 0


def blast(first, count, blocks, rate, capacity=0):
    tokens = list(range(16 * blocks))
    start = time.time()
    held = 0
    for i in range(count):
        n = first + i
        if rate > 0:
            # Sleep (not spin) until due: a spinning sender would starve libzmq's I/O thread
            # and the subscriber of the two cores.
            wait = start + i / rate - time.time()
            if wait > 0:
                time.sleep(wait)
        hashes = [(n * blocks + b) | (1 << 63) for b in range(blocks)]
        events = [["BlockStored", hashes, None, tokens, 16, None, "GPU"]]
        held += blocks
        if capacity > 0 and held > capacity:
            # The oldest blocks still held: those of batch first + i - capacity / blocks.
            old = n - capacity // blocks
            events.append(["BlockRemoved", [(old * blocks + b) | (1 << 63) for b in range(blocks)],
                           "GPU"])
            held -= blocks
        body = msgpack.packb([time.time(), events])
        pub.send_multipart([topic, n.to_bytes(8, "big"), body])
        buffer.append((n, body))
    print(f"blasted {time.time() - start:.6f}", flush=True)


print("ready", flush=True)
poller = zmq.Poller()
for line in sys.stdin:
    parts = line.split()
    if not parts:
        continue
    if parts[0] == "quit":
        break
    if parts[0] == "blast":
        args = [int(x) if i != 3 else float(x) for i, x in enumerate(parts[1:6])]
        blast(*args)
        continue
    first, count = int(parts[1]), int(parts[2])
    skip = (int(parts[3]), int(parts[4])) if len(parts) == 5 else (1, 0)
    for n in range(first, first + count):
        body = payload(n)
        if not (skip[0] <= n <= skip[1]):
            pub.send_multipart([topic, n.to_bytes(8, "big"), body])
        buffer.append((n, body))
        serve_replays(0)
    # Answer replays for a while after publishing.
    deadline = time.time() + 3
    while time.time() < deadline:
        serve_replays(50)
    print("published", flush=True)
pub.close(0)
router.close(0)
ctx.term()
