"""Summarises scripts/bench-odoo.sh's results: per route and configuration
the median over rounds of req/s, p50 and p99, then the paired differences
against A in the same round (B-A, C-A), their median and spread, and the
per-call cost the issue's acceptance names: (B-A on the one-call route) -
(B-A on the no-call route).

    python3 summarize.py RESULTS_TSV
    python3 summarize.py --instructions INSTRUCTIONS_TSV

RESULTS_TSV: one line per run, tab-separated: round, config, route, rps,
p50_us, p99_us, requests, errors, calls, journaled, gaps, odoo_cpu_ms,
collector_cpu_ms, postgres_cpu_ms (CPU time of Odoo's processes, of the
collector and of PostgreSQL's during the run).

INSTRUCTIONS_TSV (--instructions): round, config (A, B, C, or plain-MODE for
the plain process's call), route (nocall, onecall, call, or idle: the
process with nothing to do), requests, instructions (counted by callgrind
over those requests), wall_ns (the stretch's duration), calls, journaled,
gaps. It gives the instructions per request of each configuration, what the
addon adds to a request against A of the same round, and what a captured
call adds inside Odoo against the same call captured in a plain process."""

import statistics
import sys

CONFIGS = {"A": "no addon", "B": "addon, native sender", "C": "addon, pure-Python sender"}
ROUTES = ("nocall", "onecall")


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("round"):
                continue
            (r, config, route, rps, p50, p99, requests, errors, calls, journaled, gaps,
             odoo_ms, collector_ms, pg_ms) = line.rstrip("\n").split("\t")
            runs[(int(r), config, route)] = dict(
                rps=float(rps), p50=int(p50) / 1000, p99=int(p99) / 1000,
                requests=int(requests), errors=int(errors), calls=int(calls),
                journaled=int(journaled), gaps=int(gaps),
                odoo_us=1000 * int(odoo_ms) / max(int(requests), 1),
                collector_us=1000 * int(collector_ms) / max(int(requests), 1),
                pg_us=1000 * int(pg_ms) / max(int(requests), 1))
    return runs


def paired(runs, rounds, config, route):
    """(run of ``config``, run of A) of each round that has both."""
    return [(runs[(r, config, route)], runs[(r, "A", route)]) for r in rounds
            if (r, config, route) in runs and (r, "A", route) in runs]


def spread(values):
    return f"{statistics.median(values):+.3f} [{min(values):+.3f} .. {max(values):+.3f}]"


def pct_spread(values):
    return f"{statistics.median(values):+.1f} % [{min(values):+.1f} .. {max(values):+.1f}]"


# What the acceptance asks the medians to tell apart from zero.
TARGETS = (("p50", 0.05, "ms"), ("req/s", 3.0, "%"))


def resolution(p50_noise, rps_noise):
    """What this sitting's medians can tell apart, from B-C on the no-call
    route (the same code on both sides, so every round's difference is
    noise): its spread from round to round (standard deviation σ), the
    margin of the median of this many rounds (1.96 × 1.2533 σ / √n: 95 %,
    the median of a normal sample), and how many rounds a margin as small
    as each target would take."""
    n = len(p50_noise)
    if n < 3:
        return "\nResolution: fewer than 3 rounds, not estimated."
    lines = [f"\nResolution of this sitting (B-C, the same code, over {n} rounds):"]
    for (name, target, unit), values in zip(TARGETS, (p50_noise, rps_noise)):
        sigma = statistics.stdev(values)
        margin = 1.96 * 1.2533 * sigma / n ** 0.5
        needed = (1.96 * 1.2533 * sigma / target) ** 2
        lines.append(f"- {name}: σ {sigma:.3f} {unit} per round; the median of {n} rounds "
                     f"is known to ±{margin:.3f} {unit}; ±{target:g} {unit} would take "
                     f"about {needed:.0f} rounds")
    return "\n".join(lines)


def main(path):
    runs = load(path)
    rounds = sorted({r for r, _, _ in runs})
    print(f"{len(rounds)} rounds; medians over rounds, paired differences against A of "
          "the same round as median [min .. max]\n")
    print("| route | config | req/s | p50 ms | p99 ms | CPU µs/request: Odoo | collector | "
          "PostgreSQL | requests | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for route in ROUTES:
        for config in CONFIGS:
            got = [runs[(r, config, route)] for r in rounds if (r, config, route) in runs]
            if not got:
                continue
            med = lambda k: statistics.median(x[k] for x in got)  # noqa: E731
            print(f"| {route} | {config} ({CONFIGS[config]}) | {med('rps'):.1f} | "
                  f"{med('p50'):.3f} | {med('p99'):.3f} | {med('odoo_us'):.0f} | "
                  f"{med('collector_us'):.1f} | {med('pg_us'):.0f} | {sum(x['requests'] for x in got)} | "
                  f"{sum(x['errors'] for x in got)} |")
    print("\n| route | difference | p50 ms | p99 ms | req/s |")
    print("|---|---|---|---|---|")
    diffs = {}
    for route in ROUTES:
        for config in ("B", "C"):
            pairs = paired(runs, rounds, config, route)
            if not pairs:
                continue
            p50 = [x["p50"] - a["p50"] for x, a in pairs]
            p99 = [x["p99"] - a["p99"] for x, a in pairs]
            rps = [100 * (x["rps"] / a["rps"] - 1) for x, a in pairs]
            diffs[(route, config)] = p50
            print(f"| {route} | {config}-A | {spread(p50)} | {spread(p99)} | {pct_spread(rps)} |")
    # B and C run the same code on a request that makes no call (no sender
    # runs): their difference is what this machine's noise alone gives.
    pairs = [(runs[(r, "B", "nocall")], runs[(r, "C", "nocall")]) for r in rounds
             if (r, "B", "nocall") in runs and (r, "C", "nocall") in runs]
    if pairs:
        p50 = [b["p50"] - c["p50"] for b, c in pairs]
        p99 = [b["p99"] - c["p99"] for b, c in pairs]
        rps = [100 * (b["rps"] / c["rps"] - 1) for b, c in pairs]
        print(f"| nocall | B-C (the same code: the noise) | {spread(p50)} | {spread(p99)} | "
              f"{pct_spread(rps)} |")
        noise = (p50, rps)
    else:
        noise = None
    print("\nCPU time per request that the audit adds (Odoo + collector + PostgreSQL, "
          "against A of the same round), µs, median [min .. max]:\n")
    print("| route | config | Odoo | collector | PostgreSQL | all |")
    print("|---|---|---|---|---|---|")
    added = {}
    for route in ROUTES:
        for config in ("B", "C"):
            pairs = paired(runs, rounds, config, route)
            if not pairs:
                continue
            cols = {k: [x[k] - a[k] for x, a in pairs] for k in ("odoo_us", "collector_us", "pg_us")}
            total = [sum(v) for v in zip(*cols.values())]
            added[(route, config)] = total
            fmt = lambda v: f"{statistics.median(v):+.0f} [{min(v):+.0f} .. {max(v):+.0f}]"  # noqa: E731
            print(f"| {route} | {config} | {fmt(cols['odoo_us'])} | {fmt(cols['collector_us'])} | "
                  f"{fmt(cols['pg_us'])} | {fmt(total)} |")
    for config in ("B", "C"):
        if (ROUTES[0], config) in added and (ROUTES[1], config) in added:
            per_call = [c - n for n, c in zip(added[(ROUTES[0], config)],
                                              added[(ROUTES[1], config)])]
            print(f"\nCPU per call ({config}): {statistics.median(per_call):+.0f} µs "
                  f"[{min(per_call):+.0f} .. {max(per_call):+.0f}] of the machine's time")
    for config in ("B", "C"):
        if (ROUTES[0], config) in diffs and (ROUTES[1], config) in diffs:
            per_call = [c - n for n, c in zip(diffs[(ROUTES[0], config)],
                                              diffs[(ROUTES[1], config)])]
            print(f"\nPer call in Odoo, ({config}-A one call) - ({config}-A no call), p50: "
                  f"{spread(per_call)} ms")
    if noise:
        print(resolution(*noise))
    lost = [(k, v) for k, v in runs.items() if k[2] == "onecall" and k[1] != "A"
            and (v["journaled"] != v["calls"] or v["gaps"])]
    calls = sum(v["calls"] for k, v in runs.items() if k[2] == "onecall" and k[1] != "A")
    if lost:
        for (r, config, route), v in lost:
            print(f"\nLOSS: round {r} {config} {route}: {v['calls']} calls made, "
                  f"{v['journaled']} journaled, {v['gaps']} in gaps")
        return 1
    print(f"\nNo loss: each of the {calls} calls made under B and C was journaled once, "
          "attributed to egress_bench, and no gap was journaled.")
    return 0


def load_instructions(path):
    """The instructions per request of each measured stretch, less what the
    process's threads execute with nothing to do over the stretch's
    duration (the ``idle`` line of the same round and configuration)."""
    lines = []
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("round"):
                lines.append(line.rstrip("\n").split("\t"))
    idle = {(int(r), config): int(ir) / int(wall_ns)
            for r, config, route, _, ir, wall_ns, *_ in lines if route == "idle"}
    runs = {}
    for r, config, route, requests, ir, wall_ns, calls, journaled, gaps in lines:
        if route == "idle":
            continue
        background = idle.get((int(r), config), 0) * int(wall_ns)
        runs[(int(r), config, route)] = dict(
            per=(int(ir) - background) / int(requests), requests=int(requests),
            background=background / int(ir), calls=int(calls), journaled=int(journaled),
            gaps=int(gaps))
    return runs


def main_instructions(path):
    runs = load_instructions(path)
    rounds = sorted({r for r, _, _ in runs})

    def per_round(f):
        """f(round) of each round that has every run f reads."""
        out = []
        for r in rounds:
            try:
                out.append(f(lambda config, route: runs[(r, config, route)]["per"]))
            except KeyError:
                pass
        return out

    def fmt(values):
        return (f"{statistics.median(values):+,.0f} [{min(values):+,.0f} .. "
                f"{max(values):+,.0f}]")

    print(f"{len(rounds)} rounds; instructions per request (callgrind, less the idle threads' "
          "over the same time), median over rounds; differences against A of the same round "
          "as median [min .. max]\n")
    print("| route | config | instructions per request | idle threads' share, taken out | rounds |")
    print("|---|---|---|---|---|")

    def row(label, config, route):
        got = [runs[(r, config, route)] for r in rounds if (r, config, route) in runs]
        if got:
            print(f"| {label} | {statistics.median(x['per'] for x in got):,.0f} | "
                  f"{100 * statistics.median(x['background'] for x in got):.3f} % | {len(got)} |")

    for route in ROUTES:
        for config in CONFIGS:
            row(f"{route} | {config} ({CONFIGS[config]})", config, route)
    for mode in ("unpatched", "native", "python"):
        row(f"plain process, requests.get | {mode}", f"plain-{mode}", "call")
    print("\n| what | instructions | of A's request |")
    print("|---|---|---|")
    for config in ("B", "C"):
        added = per_round(lambda at: at(config, "nocall") - at("A", "nocall"))
        share = per_round(lambda at: 100 * (at(config, "nocall") / at("A", "nocall") - 1))
        if added:
            print(f"| no call, {config}-A per request | {fmt(added)} | "
                  f"{statistics.median(share):+.3f} % [{min(share):+.3f} .. {max(share):+.3f}] |")
    noise = per_round(lambda at: at("B", "nocall") - at("C", "nocall"))
    if noise:
        print(f"| no call, B-C (the same code) | {fmt(noise)} | |")
    unpatched_odoo = per_round(lambda at: at("A", "onecall") - at("A", "nocall"))
    if unpatched_odoo:
        print(f"| the unpatched call in Odoo, A one call - A no call | {fmt(unpatched_odoo)} | |")
    print("\n| sender | a captured call adds, inside Odoo: (X-A one call) - (X-A no call) | "
          "in a plain process: captured - unpatched | inside / plain |")
    print("|---|---|---|---|")
    for config, mode in (("B", "native"), ("C", "python")):
        inside = per_round(lambda at: (at(config, "onecall") - at("A", "onecall"))
                           - (at(config, "nocall") - at("A", "nocall")))
        plain = per_round(lambda at: at(f"plain-{mode}", "call") - at("plain-unpatched", "call"))
        if inside and plain:
            print(f"| {config} ({mode}) | {fmt(inside)} | {fmt(plain)} | "
                  f"{statistics.median(inside) / statistics.median(plain):.2f} |")
    lost = [(k, v) for k, v in runs.items() if k[1] in ("B", "C") and k[2] == "onecall"
            and (v["journaled"] != v["calls"] or v["gaps"])]
    short = [(k, v) for k, v in runs.items() if k[2] in ("onecall", "call")
             and v["calls"] != v["requests"]]
    for (r, config, route), v in lost:
        print(f"\nLOSS: round {r} {config} {route}: {v['calls']} calls made, "
              f"{v['journaled']} journaled, {v['gaps']} in gaps")
    for (r, config, route), v in short:
        print(f"\nMISSING CALLS: round {r} {config} {route}: {v['requests']} requests, "
              f"{v['calls']} calls reached the responder")
    if lost or short:
        return 1
    calls = sum(v["calls"] for k, v in runs.items() if k[1] in ("B", "C") and k[2] == "onecall")
    print(f"\nNo loss: each of the {calls} calls made under B and C was journaled once, "
          "attributed to egress_bench, and no gap was journaled.")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--instructions":
        sys.exit(main_instructions(sys.argv[2]))
    sys.exit(main(sys.argv[1]))
