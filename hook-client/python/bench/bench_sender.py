"""What the native sender costs the host per captured call, at an Odoo
worker's pace: calls that come alone, a few milliseconds apart
(docs/PERFORMANCE-python.md, "The sender thread's wake-ups").

    python3 hook-client/python/bench/bench_sender.py

``requests.get`` calls on a kept-alive session to a loopback server in
another process, ``BENCH_GAP_MS`` (10) apart, alternately unpatched and
captured with the native sender (the interceptor stays installed and is
switched off and on between calls, outside the timed part), for
``BENCH_ROUNDS`` (5) rounds of ``BENCH_CALLS`` (300) calls. Each call's CPU
time on the calling thread (``time.thread_time_ns``); per round, the sender
thread's CPU time (``/proc/self/task/*/schedstat``) and the voluntary
context switches (each a sleep and a wake-up), divided by the captured
calls. "Added" is, round by round, the captured calls' median
CPU on the calling thread minus the unpatched calls' median, plus the
sender thread's share. The reference, in the same run: the unpatched
call's CPU on the calling thread. Events go to a datagram socket drained
by another process (the collector is not measured here). ``BENCH_JSON=1``
prints the medians as JSON.
"""

import json
import os
import statistics
import sys
import time

import egress_hook
from egress_hook import interceptor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_odoo import loopback_call  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", 5))
CALLS = int(os.environ.get("BENCH_CALLS", 300))
GAP_S = float(os.environ.get("BENCH_GAP_MS", 10)) / 1000


def threads():
    """name → (CPU ns, voluntary context switches) of this process's threads."""
    out = {}
    base = f"/proc/{os.getpid()}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/{tid}/schedstat") as f:
                cpu = int(f.read().split()[0])
            with open(f"{base}/{tid}/status") as f:
                switches = next(int(line.split()[1]) for line in f
                                if line.startswith("voluntary_ctxt_switches"))
        except (OSError, StopIteration, ValueError):
            continue  # a thread that ended meanwhile
        out[name if tid != str(os.getpid()) else "caller"] = (cpu, switches)
    return out


def run(call, n):
    """One round: ``n`` calls, unpatched and captured by turns. Returns the
    per-call CPU µs of each mode on the calling thread, and per captured
    call the threads' {name: (CPU µs, wake-ups)}."""
    clock = time.thread_time_ns
    cpu = {False: [], True: []}
    before = threads()
    for i in range(2 * n):
        captured = bool(i % 2)
        interceptor.settings.update(enabled=captured)
        t0 = clock()
        call()
        cpu[captured].append((clock() - t0) / 1000)
        time.sleep(GAP_S)
    after = threads()
    per_call = {name: ((after[name][0] - before.get(name, (0, 0))[0]) / n / 1000,
                       (after[name][1] - before.get(name, (0, 0))[1]) / n)
                for name in after}
    return statistics.median(cpu[False]), statistics.median(cpu[True]), per_call


def main():
    if not egress_hook.native_available():
        print("SKIPPED: egress_hook's native module is not available", file=sys.stderr)
        return 2
    with loopback_call() as (ingest, call):
        interceptor.install(ingest, "bench", transport="native")
        interceptor.set_context("bench", "http", "/bench", 1)
        try:
            for _ in range(50):
                call()
            samples = {"unpatched caller": [], "native caller": [], "sender": [],
                       "added": []}
            wakeups = {"sender": []}
            for _ in range(ROUNDS):
                plain, native, threads_ = run(call, CALLS)
                sender = threads_.get("egress-hook-sen", (0.0, 0.0))
                samples["unpatched caller"].append(plain)
                samples["native caller"].append(native)
                samples["sender"].append(sender[0])
                samples["added"].append(native - plain + sender[0])
                wakeups["sender"].append(sender[1])
            sent = interceptor.stats().get("sent", 0)
        finally:
            interceptor.uninstall()
    medians = {name: round(statistics.median(v), 1) for name, v in samples.items()}
    reference = medians["unpatched caller"]
    print(f"{ROUNDS} rounds of {CALLS} unpatched and {CALLS} captured calls by turns, "
          f"{GAP_S * 1000:g} ms apart; {sent} events sent; CPU µs per call, "
          f"median over rounds [min .. max]:")
    for name, values in samples.items():
        share = f" = {medians[name] / reference:.3f} of the unpatched call" if reference else ""
        print(f"  {name:17s} {medians[name]:8.1f} [{min(values):.1f} .. {max(values):.1f}]{share}")
    for name, values in wakeups.items():
        print(f"  wake-ups per captured call, {name} thread: {statistics.median(values):.2f}")
    if os.environ.get("BENCH_JSON"):
        print(json.dumps({"cpu_us": medians,
                          "wakeups": {n: statistics.median(v) for n, v in wakeups.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
