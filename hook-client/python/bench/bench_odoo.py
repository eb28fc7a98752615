"""Inside Odoo: what the addon's glue costs per request, and what one
captured ``requests.get`` costs inside an Odoo process against the same call
in a plain Python process (docs/PERFORMANCE-python.md, "Inside Odoo").

    # the glue, per request, and the call inside Odoo (an ``odoo-bin shell``
    # on a database where mit_network_audit is installed):
    odoo-bin shell -d DB --load=base,web < hook-client/python/bench/bench_odoo.py
    # the same call in a plain process:
    python3 hook-client/python/bench/bench_odoo.py

Environment: ``BENCH_ROUNDS`` (20), ``BENCH_CALLS`` (100 calls per mode and
round), ``BENCH_DEPTH`` (60 frames above each call, an Odoo request's
depth), ``BENCH_GLUE`` (20000 enter/leave pairs per block), ``BENCH_JSON``.

The call: ``requests.get`` on a kept-alive session to a loopback server in
another process, unpatched, with the native sender and with the pure-Python
sender, modes alternated in blocks of ``BENCH_CALLS`` for ``BENCH_ROUNDS``
rounds; "added" is a mode's median minus the unpatched median. Events go to
a datagram socket drained by another process (the collector's share of the
machine is not measured here). The glue: ``glue.enter`` + ``glue.leave`` in
a tight loop, settings unchanged (the common request), a median of blocks,
minus the empty loop.
"""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import requests

import egress_hook
from egress_hook import interceptor

_SERVER = """
import http.server, socketserver, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
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

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
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

ROUNDS = int(os.environ.get("BENCH_ROUNDS", 20))
CALLS = int(os.environ.get("BENCH_CALLS", 100))
DEPTH = int(os.environ.get("BENCH_DEPTH", 60))
GLUE = int(os.environ.get("BENCH_GLUE", 20000))


def _deep(n, f):
    if n == 0:
        return f()
    return _deep(n - 1, f)


def _block(f, n):
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in range(n):
        f()
    return (clock() - t0) / n


def glue_cost(env, glue, blocks=15):
    """ns per request of the glue's enter + leave, and of its parts."""
    def empty():
        pass

    def enter_leave():
        glue.leave(glue.enter(env, "http", "/egress_bench/nocall"))

    parts = {"enter + leave": enter_leave}
    if hasattr(glue, "sync_settings"):
        parts["sync_settings"] = lambda: glue.sync_settings(env)
    parts["env['ir.config_parameter']"] = lambda: env["ir.config_parameter"]
    parts["ormcache read of the settings"] = \
        lambda params=env["ir.config_parameter"]: params._network_audit_settings()
    enter_leave()
    out = {name: [] for name in parts}
    base = []
    for _ in range(blocks):
        base.append(_block(empty, GLUE))
        for name, f in parts.items():
            out[name].append(_block(f, GLUE))
    zero = statistics.median(base)
    return {name: round(statistics.median(v) - zero, 1) for name, v in out.items()}


@contextlib.contextmanager
def loopback_call(target="/bench"):
    """Yields ``(ingest, call)``: the path of a datagram socket drained by
    another process (the collector's stand-in) and ``call``, one
    ``requests.get`` of ``target`` on a kept-alive session to a loopback HTTP
    server in a third process."""
    directory = tempfile.mkdtemp(prefix="eh-bench-")
    ingest = os.path.join(directory, "ingest.sock")
    python = os.environ.get("BENCH_PYTHON", sys.executable)
    drain = subprocess.Popen([python, "-c", _DRAIN, ingest], stdin=subprocess.DEVNULL)
    server = subprocess.Popen([python, "-c", _SERVER], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, text=True)
    try:
        while not os.path.exists(ingest):
            time.sleep(0.01)
        url = f"http://127.0.0.1:{int(server.stdout.readline())}{target}"
        session = requests.Session()

        def call():
            session.get(url).content

        yield ingest, call
    finally:
        for child in (drain, server):
            child.kill()
            child.wait()


def call_cost(enter=None, leave=None):
    """Added µs per captured requests.get (median), per sender."""
    with loopback_call("/bench?q=1") as (ingest, call):
        modes = ["unpatched", "python"]
        if egress_hook.native_available():
            modes.insert(1, "native")
        samples = {m: [] for m in modes}
        clock = time.perf_counter_ns
        for _ in range(50):
            call()
        for _ in range(ROUNDS):
            for mode in modes:
                if mode != "unpatched":
                    interceptor.install(ingest, transport=mode)
                token = enter() if enter else None
                times = samples[mode]
                for _ in range(CALLS):
                    t0 = clock()
                    _deep(DEPTH, call)
                    times.append(clock() - t0)
                if leave:
                    leave(token)
                interceptor.uninstall()
    base = statistics.median(samples["unpatched"]) / 1000
    out = {"unpatched median": round(base, 1)}
    for mode in modes[1:]:
        out[f"added, {mode}"] = round(statistics.median(samples[mode]) / 1000 - base, 1)
    return out


def main(env=None):
    result = {"load_average_1min": round(os.getloadavg()[0], 2),
              "depth": DEPTH, "calls_per_mode": ROUNDS * CALLS}
    if env is not None:
        from odoo.addons.mit_network_audit import glue

        was_installed = interceptor.installed()
        if not was_installed:
            interceptor.install()
        result["glue ns per request"] = glue_cost(env, glue)
        interceptor.uninstall()
        result["inside Odoo, requests.get µs"] = call_cost(
            lambda: glue.enter(env, "http", "/egress_bench/onecall"), glue.leave)
        if was_installed:
            interceptor.install()
    else:
        token = interceptor.set_context("bench", "http", "/egress_bench/onecall", 2)
        result["plain process, requests.get µs"] = call_cost()
        interceptor.reset_context(token)
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(("BENCH " + json.dumps(result)) if os.environ.get("BENCH_JSON")
          else json.dumps(result, indent=2, ensure_ascii=False))


if "env" in globals():  # odoo-bin shell
    main(env)  # noqa: F821
elif __name__ == "__main__":
    main()
