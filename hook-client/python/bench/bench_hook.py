"""Added time per audited call: loopback TCP connect and loopback http.client
GET, unpatched vs the native sender vs the pure-Python sender, and the cost
split (stack capture, event building, encoding, send).

    python3 hook-client/python/bench/bench_hook.py [--calls 500] [--rounds 40] [--json]

Each round measures every mode in turn, in short blocks (so drift and other
processes' bursts hit them alike); a figure is the median of all per-call
times of a mode. "Added" is a mode's median minus the unpatched median.
Beside it: the mean and 90th percentile, and CPU time per call of the
calling thread and of the whole process (which includes the native sender
thread's deferred sends). Events go to a datagram socket drained by another
process, as the collector would, so sends succeed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import egress_hook
from egress_hook import _wire, interceptor
from egress_hook.interceptor import _core


_SERVERS = """
import http.server, socket, socketserver, threading

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle on, the body can wait for
    # an ACK that loopback delays, stalling keep-alive clients.
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

def accept_forever(listener):
    while True:
        conn, _ = listener.accept()
        conn.close()

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1024)
threading.Thread(target=accept_forever, args=(listener,), daemon=True).start()
server = Server(("127.0.0.1", 0), Handler)
print(listener.getsockname()[1], server.server_address[1], flush=True)
server.serve_forever()
"""

_DRAIN = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(sys.argv[1])
while True:
    s.recv(70000)
"""


def tcp_connect(port):
    def call():
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        s.close()

    return call


def http_get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def call():
        conn.request("GET", "/bench?q=1")
        conn.getresponse().read()

    return call


def _deep(n, f):
    """Calls ``f`` from ``n`` frames down, like an Odoo addon under the
    server, the ORM and a controller."""
    if n == 0:
        return f()
    return _deep(n - 1, f)


def measure(call, n, depth):
    """Per-call wall-clock times, and the block's CPU time (calling thread,
    whole process), in ns."""
    times = []
    clock = time.perf_counter_ns
    thread0, process0 = time.thread_time_ns(), time.process_time_ns()
    for _ in range(n):
        t0 = clock()
        _deep(depth, call)
        times.append(clock() - t0)
    return times, time.thread_time_ns() - thread0, time.process_time_ns() - process0


def per_call_ns(f, n=20000):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        f()
    return (time.perf_counter_ns() - t0) / n


def paced_ns(f, n=5000, gap_ns=20000):
    """Median time of ``f`` called every ``gap_ns``, as between real calls
    (a sender thread keeps up, a queue never fills); the pause is a busy
    loop, not a system call."""
    clock = time.perf_counter_ns
    times = []
    for _ in range(n):
        t0 = clock()
        f()
        t1 = clock()
        times.append(t1 - t0)
        while clock() - t1 < gap_ns:
            pass
    return statistics.median(times) - statistics.median(
        [clock() - clock() for _ in range(1000)])


def split(ingest, depth):
    """Microbenchmarks of the stages of one event, in µs."""
    out = {}
    native_capture = getattr(egress_hook._native, "capture_stack", None)
    _core.native_capture = None
    empty = per_call_ns(lambda: _deep(depth, lambda: None)) / 1000
    out["stack capture, pure Python"] = \
        per_call_ns(lambda: _deep(depth, _core.capture_stack)) / 1000 - empty
    stack = _deep(depth, _core.capture_stack)
    if native_capture is not None:
        _core.native_capture = native_capture
        out["stack capture, native"] = \
            per_call_ns(lambda: _deep(depth, _core.capture_stack)) / 1000 - empty
        native_stack = _deep(depth, _core.capture_stack)
        _core.native_capture = None

    def build(stack=stack):
        rec = _core.Record("http", "http", "GET", "127.0.0.1", 8069, stack)
        rec.path = "/bench"
        rec.query_keys = ["q"]
        rec.header_names = ["Host", "Accept-Encoding"]
        return rec.fields()

    out["event building"] = per_call_ns(build) / 1000
    fields = build()
    out["encoding (python)"] = per_call_ns(lambda: _wire.encode_call(1, 1, fields)) / 1000
    data = _wire.encode_call(1, 1, fields)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)

    def send():
        try:
            sock.sendto(data, ingest)
        except BlockingIOError:
            pass  # the drain thread fell behind this tight loop: same syscall

    out["send (sendto syscall)"] = per_call_ns(send) / 1000
    python = egress_hook.PythonClient(ingest)
    out["python sender: send_call (encode + seq + send)"] = per_call_ns(
        lambda: python.send_call(fields)) / 1000
    native = egress_hook.client(ingest) if egress_hook.native_available() else None
    if native is not None:
        out["native sender: send_call (convert + encode + send)"] = per_call_ns(
            lambda: native.send_call(fields)) / 1000
    if native is not None and hasattr(native, "queue_call"):
        native_fields = build(native_stack)
        out["native sender: queue_call (convert + queue; the thread sends)"] = \
            paced_ns(lambda: native.queue_call(native_fields)) / 1000
        native.flush()
    sock.close()
    return {k: round(v, 2) for k, v in out.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per mode per round")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--depth", type=int, default=20,
                        help="extra frames above each call (an Odoo-like stack)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="eh-bench-")
    ingest = os.path.join(directory, "ingest.sock")
    # The collector is another process: a drain thread here would compete
    # for the GIL on every datagram and be measured as the hook's cost.
    drain = subprocess.Popen(
        [sys.executable, "-c", _DRAIN, ingest], stdin=subprocess.DEVNULL)
    while not os.path.exists(ingest):
        time.sleep(0.01)

    # Servers in another process too, for the same reason.
    servers = subprocess.Popen([sys.executable, "-c", _SERVERS], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, text=True)
    tcp_port, http_port = map(int, servers.stdout.readline().split())

    workloads = {"tcp connect": tcp_connect(tcp_port),
                 "http.client GET": http_get(http_port)}
    modes = ["unpatched", "python"]
    if egress_hook.native_available():
        modes.insert(1, "native")
    samples = {(w, m): [] for w in workloads for m in modes}
    cpu = {(w, m): [0, 0] for w in workloads for m in modes}
    load_before = os.getloadavg()
    for workload in workloads.values():  # warm up connections and caches
        measure(workload, 200, args.depth)
    for _ in range(args.rounds):
        for mode in modes:
            if mode != "unpatched":
                interceptor.install(ingest, "bench", transport=mode)
            for name, workload in workloads.items():
                times, thread_ns, process_ns = measure(workload, args.calls, args.depth)
                samples[(name, mode)] += times
                cpu[(name, mode)][0] += thread_ns
                cpu[(name, mode)][1] += process_ns
            interceptor.uninstall()
    load_after = os.getloadavg()
    interceptor.install(ingest, "bench", transport="python")
    stats = interceptor.stats()
    interceptor.uninstall()

    result = {"machine": {"cpu": _cpu(), "cores": os.cpu_count(),
                          "python": sys.version.split()[0], "platform": platform.platform()},
              "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
              "calls_per_mode": args.calls * args.rounds, "stack_depth_above_call": args.depth,
              "median_us": {}, "added_us": {}, "added_mean_us": {}, "added_p90_us": {},
              "added_cpu_thread_us": {}, "added_cpu_process_us": {}}
    n = args.calls * args.rounds
    for name in workloads:
        base = _figures(samples[(name, "unpatched")], cpu[(name, "unpatched")], n)
        for mode in modes:
            got = _figures(samples[(name, mode)], cpu[(name, mode)], n)
            key = f"{name} / {mode}"
            result["median_us"][key] = round(got["median"], 2)
            if mode != "unpatched":
                for figure, field in (("median", "added_us"), ("mean", "added_mean_us"),
                                      ("p90", "added_p90_us"), ("thread", "added_cpu_thread_us"),
                                      ("process", "added_cpu_process_us")):
                    result[field][key] = round(got[figure] - base[figure], 2)
    result["split_us"] = split(ingest, args.depth)
    result["last_python_sender_stats"] = stats
    for child in (drain, servers):
        child.kill()
        child.wait()
    shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}")
    print(f"{result['calls_per_mode']} calls per mode, {args.depth} frames above each call, "
          f"load average {result['load_average_1min'][0]} -> {result['load_average_1min'][1]}\n")
    print(f"{'workload / mode':32} {'median':>8} {'added':>8} {'mean+':>8} {'p90+':>8} "
          f"{'cpu thr+':>8} {'cpu proc+':>9}   (µs)")
    for key, median in result["median_us"].items():
        cells = [result[f].get(key) for f in ("added_us", "added_mean_us", "added_p90_us",
                                               "added_cpu_thread_us", "added_cpu_process_us")]
        print(f"{key:32} {median:8.2f} " + " ".join(
            f"{'':>8}" if c is None else f"{c:8.2f}" for c in cells))
    print("\ncost split (µs per event):")
    for key, value in result["split_us"].items():
        print(f"  {key:55} {value:6.2f}")


def _figures(times, cpu, n):
    times = sorted(times)
    return {"median": statistics.median(times) / 1000, "mean": statistics.fmean(times) / 1000,
            "p90": times[int(len(times) * 0.9)] / 1000, "thread": cpu[0] / n / 1000,
            "process": cpu[1] / n / 1000}


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
