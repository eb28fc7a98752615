"""The floor of a call's datagram hop: what the kernel's Unix datagram
socket costs a sender and a receiver per datagram at a steady pace, with no
hook and no collector around it (scripts/bench-paced.sh --floor).

    python3 scripts/bench_paced/transport.py --rate 150 --count 2000 --size 660

A receiver process blocks in ``recv_into`` on a bound socket, one datagram
at a time, as any receiver that is not polling must; the sender sends
``--count`` datagrams of ``--size`` bytes (660: a captured ``requests.get``
with its stack, as ``hook-client/python/bench`` sends it), ``--rate`` a
second, on a connected socket. Prints, per datagram: the sender's CPU in ``send`` (its
thread's CPU time around the call), the receiver's CPU (its process's, from
the first datagram to the last) and the receiver's wake-ups (voluntary
context switches).
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time


def voluntary_switches():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f
                    if line.startswith("voluntary_ctxt_switches"))


def receive(path, count):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    print("ready", flush=True)
    buf = bytearray(65536)
    sock.recv_into(buf)  # the first one starts the clock
    cpu0, woken0 = time.process_time_ns(), voluntary_switches()
    for _ in range(count - 1):
        sock.recv_into(buf)
    cpu, woken = time.process_time_ns() - cpu0, voluntary_switches() - woken0
    print(f"{cpu / 1000 / (count - 1):.2f} {woken / (count - 1):.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=150)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=660)
    parser.add_argument("--receive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        return receive(args.receive, args.count)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "floor.sock")
        receiver = subprocess.Popen(
            [sys.executable, __file__, "--receive", path, "--count", str(args.count)],
            stdout=subprocess.PIPE, text=True)
        assert receiver.stdout.readline().strip() == "ready"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.connect(path)
        payload, gap = b"x" * args.size, 1 / args.rate
        clock, spent = time.thread_time_ns, 0
        next_at = time.monotonic()
        for _ in range(args.count):
            t0 = clock()
            sock.send(payload)
            spent += clock() - t0
            next_at += gap
            time.sleep(max(0.0, next_at - time.monotonic()))
        received = receiver.stdout.readline().split()
        receiver.wait()
    print(f"send_us_per_datagram {spent / 1000 / args.count:.2f}")
    print(f"receive_us_per_datagram {received[0]}")
    print(f"receiver_wakeups_per_datagram {received[1]}")


if __name__ == "__main__":
    sys.exit(main())
