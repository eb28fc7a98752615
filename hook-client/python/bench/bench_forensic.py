"""Forensic capture's cost to the audited call.

    python3 hook-client/python/bench/bench_forensic.py --old DIR [--rounds 20] [--calls 400]

1. Capture off: the time a loopback ``http.client`` POST adds with the
   interceptor installed (native sender), this tree's package against the
   package at ``--old`` (a directory holding an ``egress_hook`` package from
   before forensic capture, e.g. ``git archive <commit>
   hook-client/python/python/egress_hook``, with this build's ``_native``
   module copied in), in alternating child processes, each measuring
   unpatched and patched calls in interleaved blocks.
2. Capture on: the same POST with bodies of 1, 16 and 64 KiB, capture off vs
   on for 127.0.0.1 (a state file as the collector writes it), in one child
   process: the cost per KiB of body is the slope of the added time.

Events go to a datagram socket drained by another process. A figure is the
median of per-call times; "added" is patched minus unpatched (off) or on
minus off (on), per round, then the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import http.client, json, os, socket, statistics, sys, time
mode, sock_path, port, calls, blocks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
from egress_hook import interceptor
conn = http.client.HTTPConnection("127.0.0.1", port)

def post(body):
    t0 = time.perf_counter_ns()
    conn.request("POST", "/bench", body=body)
    r = conn.getresponse()
    r.read()
    return time.perf_counter_ns() - t0

def block(body, n):
    return [post(body) for _ in range(n)]

out = {}
if mode == "off":
    plain, hooked = [], []
    for _ in range(blocks):
        interceptor.uninstall()
        plain += block(b"x" * 256, calls)
        interceptor.install(sock_path, "bench")
        hooked += block(b"x" * 256, calls)
    interceptor.uninstall()
    out = {"plain": statistics.median(plain), "hooked": statistics.median(hooked)}
else:
    fdir = os.path.join(os.path.dirname(sock_path), "forensic")
    os.makedirs(fdir, exist_ok=True)
    state = os.path.join(fdir, "bench.json")
    interceptor.install(sock_path, "bench")
    for kib in (1, 16, 64):
        body = os.urandom(kib * 1024)
        off, on = [], []
        for _ in range(blocks):
            if os.path.exists(state):
                os.remove(state)
            interceptor._forensic._load()
            off += block(body, calls)
            with open(state, "w") as f:
                json.dump({"database": "bench", "host": "127.0.0.1",
                           "expires_at_us": time.time_ns() // 1000 + 3600_000_000,
                           "max_body_bytes": 65536, "entry_seq": 1}, f)
            interceptor._forensic._load()
            on += block(body, calls)
            interceptor.flush()
        out[str(kib)] = {"off": statistics.median(off), "on": statistics.median(on)}
    os.remove(state)
    interceptor.uninstall()
print(json.dumps(out))
"""

SERVER = r"""
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""

DRAIN = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
print("ready", flush=True)
while True:
    s.recv(70000)
"""


def child(package_dir, mode, sock, port, calls, blocks):
    env = dict(os.environ, PYTHONPATH=package_dir)
    env.pop("EGRESS_FORENSIC_DIR", None)
    out = subprocess.run([sys.executable, "-c", CHILD, mode, sock, str(port), str(calls),
                          str(blocks)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="directory with the older egress_hook")
    parser.add_argument("--new", default=None, help="directory with this tree's egress_hook "
                        "(default: where `import egress_hook` finds it)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=4)
    args = parser.parse_args()
    if args.new is None:
        import egress_hook
        args.new = os.path.dirname(os.path.dirname(egress_hook.__file__))
    work = tempfile.mkdtemp(prefix="bench-forensic-")
    sock = os.path.join(work, "ingest.sock")
    drain = subprocess.Popen([sys.executable, "-c", DRAIN, sock], stdout=subprocess.PIPE,
                             text=True)
    drain.stdout.readline()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    try:
        added = {"old": [], "new": []}
        for _ in range(args.rounds):
            for name, package in (("old", args.old), ("new", args.new)):
                r = child(package, "off", sock, port, args.calls, args.blocks)
                added[name].append((r["hooked"] - r["plain"]) / 1000)
        on = {}
        for _ in range(max(1, args.rounds // 4)):
            r = child(args.new, "on", sock, port, args.calls // 2, args.blocks)
            for kib, v in r.items():
                on.setdefault(kib, []).append((v["on"] - v["off"]) / 1000)
    finally:
        server.kill()
        drain.kill()
    old, new = statistics.median(added["old"]), statistics.median(added["new"])
    on_med = {k: statistics.median(v) for k, v in on.items()}
    per_kib = (on_med["64"] - on_med["1"]) / 63
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"capture off, added per call (µs, median of {args.rounds} rounds): "
          f"before forensic {old:.2f}, with forensic {new:.2f}, ratio {new / old:.3f}")
    print("capture on, added over capture off per call (µs): "
          + ", ".join(f"{k} KiB {v:.1f}" for k, v in sorted(on_med.items(), key=lambda kv: int(kv[0]))))
    print(f"capture on, cost per KiB of body: {per_kib:.2f} µs")


if __name__ == "__main__":
    main()
