"""The reference of scripts/bench-odoo.sh --instructions: the one-call
route's call, ``requests.get`` to the responder, in a plain Python process,
unpatched or captured by the interceptor, so that what a captured call
costs inside Odoo compares with what it costs outside.

    python3 plain_call.py MODE URL INGEST_SOCKET DATABASE CALLS

MODE: ``unpatched``, ``native`` or ``python`` (the sender). It makes CALLS
calls as a warm-up, then, for each line ``go`` read from standard input,
CALLS calls, answering ``done`` (the benchmark counts the instructions in
between); it starts by writing ``ready``."""

import sys

import requests

from egress_hook import interceptor


def main(mode, url, ingest, database, calls):
    if mode != "unpatched":
        interceptor.install(ingest, database, transport=mode)
        # What the Odoo glue sets for a request that makes a call.
        interceptor.set_context(database, "http", "/egress_bench/none/onecall", 1)

    def run():
        for _ in range(calls):
            requests.get(url, timeout=10)

    run()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            run()
            print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
