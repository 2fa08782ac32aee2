#!/usr/bin/env python3
"""bench/compare's report: tables (markdown, on stdout) and, with --plots,
PNG plots (gnuplot, pngcairo) of throughput and of the latency CDFs, and with
--benchmarks-md the "Latest" section of BENCHMARKS.md rewritten.

Input: WORK/runs/{wald,bare}-W-R.json (wal-bench and wald-bare --json plus
the server's CPU and RSS, one per workload W and round R) and
WORK/peers/results.json (../shared/bench-peers)."""
import argparse
import json
import os
import statistics
import subprocess
import sys

BEGIN, END = "<!-- bench/compare --update: begin -->", "<!-- bench/compare --update: end -->"
NAMES = {"W1": "serial 1x1", "W2": "fan-in 64x1", "W3": "pipelined 8x64", "W4": "large 16x1 4 KiB",
         "W5": "coalesced 8x64", "W5-256": "coalesced 8x256", "W3-P": "pipelined 8x64, producers"}


def fmt_us(v):
    if v is None:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def load_runs(work, side, name, rounds):
    return [json.load(open(os.path.join(work, "runs", f"{side}-{name}-{r}.json"))) for r in range(1, rounds + 1)]


def merged_cdf(runs):
    """The CDF of all rounds' latencies together: [(µs, fraction)], from
    each run's own CDF weighted by its record count."""
    xs = sorted({x for r in runs for x, _ in r["latency_cdf"]})
    total = sum(r["records"] for r in runs)
    points = []
    for x in xs:
        below = 0.0
        for r in runs:
            f = 0.0
            for px, pf in r["latency_cdf"]:
                if px > x:
                    break
                f = pf
            below += f * r["records"]
        points.append((x, below / total))
    return points


def peer_rows(work):
    path = os.path.join(work, "peers", "results.json")
    data = json.load(open(path))
    rows = [r for run in data["runs"] for r in run["rows"]]
    machine = data["runs"][0]["meta"].get("machine", "") if data["runs"] else ""
    return rows, machine


def peer(rows, system, wl):
    for r in rows:
        if r["system"] == system and r["workload"] == wl and r.get("rps"):
            return r
    return None


def report(args):
    workloads = [w.split() for w in args.workload]
    rows, machine = peer_rows(args.work)
    systems = [s for s in ("redis", "postgres") if any(r["system"] == s for r in rows)]
    out = []
    summary = {}
    out.append(f"Command: `DUR={args.dur} ROUNDS={args.rounds} bench/compare` on {args.commit}. "
               f"Machine: {machine}.\n")
    out.append(f"wald and the bare server alternate, {args.rounds} rounds of {args.dur} s per workload; "
               "medians of the rounds, and the spread (lowest and highest) of the rounds' wald/bare ratios. "
               "Daemon CPU is the server process's user+system time per record acked; RSS its high-water mark.\n")
    out.append("| workload | wald records/s | bare records/s | **wald/bare** (spread) | wald p50 / p99 | "
               "bare p50 / p99 | wald rec/sync | daemon µs CPU/rec: wald, bare | wald RSS MiB |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, clients, inflight, size, *mode in workloads:
        w, b = load_runs(args.work, "wald", name, args.rounds), load_runs(args.work, "bare", name, args.rounds)
        med = lambda runs, k: statistics.median(r[k] for r in runs)
        ratios = [x["records_per_sec"] / y["records_per_sec"] for x, y in zip(w, b)]
        s = {"wald": med(w, "records_per_sec"), "bare": med(b, "records_per_sec"), "ratio": statistics.median(ratios),
             "lo": min(ratios), "hi": max(ratios), "wald_p50": med(w, "p50_us"), "wald_p99": med(w, "p99_us"),
             "wald_cdf": merged_cdf(w), "bare_cdf": merged_cdf(b)}
        summary[name] = s
        out.append(f"| {name} {NAMES.get(name, '')} ({size} B) | {s['wald']:,.0f} | {s['bare']:,.0f} | "
                   f"**{s['ratio']:.2f}x** ({s['lo']:.2f}-{s['hi']:.2f}) | "
                   f"{fmt_us(s['wald_p50'])} / {fmt_us(s['wald_p99'])} | "
                   f"{fmt_us(med(b, 'p50_us'))} / {fmt_us(med(b, 'p99_us'))} | {med(w, 'records_per_sync'):.1f} | "
                   f"{med(w, 'daemon_cpu_us_per_record'):.2f}, {med(b, 'daemon_cpu_us_per_record'):.2f} | "
                   f"{max(r['daemon_rss_mib'] for r in w):.1f} |")
    if systems:
        out.append("\nThe peers, one run in the same session (wald: the median above):\n")
        head = "| workload |"
        for s in systems:
            head += f" {s} records/s | {s} p50 / p99 | **wald/{s}** |"
        out.append(head)
        out.append("|---|" + "---:|---:|---:|" * len(systems))
        for name, *_ in workloads:
            line = f"| {name} |"
            for s in systems:
                p = peer(rows, s, name)
                if p is None:
                    line += " - | - | - |"
                else:
                    line += (f" {p['rps']:,.0f} | {fmt_us(p.get('p50_us'))} / {fmt_us(p.get('p99_us'))} | "
                             f"**{summary[name]['wald'] / p['rps']:.2f}x** |")
            out.append(line)
    fio = [r for r in rows if r["system"] == "fio"]
    if fio:
        out.append("\nfio, the device's raw figures in the same session:\n")
        out.append("| case | records/s | MB/s | p50 | p99 |\n|---|---:|---:|---:|---:|")
        for r in fio:
            rps = "-" if not r.get("rps") else f"{r['rps']:,.0f}"
            out.append(f"| {r['workload']} | {rps} | {r.get('mbps') or 0:.1f} | {fmt_us(r.get('p50_us'))} | "
                       f"{fmt_us(r.get('p99_us'))} |")
    return "\n".join(out) + "\n", summary, rows, systems


def plot(args, summary, rows, systems):
    """Writes throughput.png and latency.png into args.plots with gnuplot."""
    os.makedirs(args.plots, exist_ok=True)
    names = list(summary)
    data = os.path.join(args.work, "throughput.dat")
    with open(data, "w") as f:
        f.write("workload wald bare " + " ".join(systems) + "\n")
        for n in names:
            vals = [summary[n]["wald"], summary[n]["bare"]]
            for s in systems:
                p = peer(rows, s, n)
                vals.append(p["rps"] if p else 0)
            f.write(n + " " + " ".join(f"{v:.0f}" for v in vals) + "\n")
    cols = 2 + len(systems)
    script = [
        "set terminal pngcairo size 900,460 font 'sans,11' background rgb 'white'",
        f"set output '{os.path.join(args.plots, 'throughput.png')}'",
        "set title 'Durable appends per second (log scale; wald and bare: median of the rounds)'",
        "set style data histograms", "set style histogram clustered gap 1", "set style fill solid 0.8 border -1",
        "set logscale y", "set yrange [1000:*]", "set grid ytics", "set key top left", "set ylabel 'records/s'",
        "plot " + ", ".join(f"'{data}' using {c}:xtic(1) title columnhead" for c in range(2, cols + 2)),
    ]
    # One CDF panel per workload: wald and bare (all rounds), the peers'
    # p50 and p99 as points.
    panels = []
    for i, n in enumerate(names):
        for side in ("wald", "bare"):
            with open(os.path.join(args.work, f"cdf-{n}-{side}.dat"), "w") as f:
                for x, frac in summary[n][side + "_cdf"]:
                    f.write(f"{x} {frac}\n")
        pts = os.path.join(args.work, f"peers-{n}.dat")
        plotted = []  # the peers with figures for this workload
        with open(pts, "w") as f:
            for s in systems:
                p = peer(rows, s, n)
                if p and p.get("p50_us") and p.get("p99_us"):
                    f.write(f"\"{s}\" {p['p50_us']} 0.5\n\"{s}\" {p['p99_us']} 0.99\n")
                    plotted.append(s)
        parts = [f"'{os.path.join(args.work, f'cdf-{n}-wald.dat')}' using 1:2 with steps lw 2 title 'wald'",
                 f"'{os.path.join(args.work, f'cdf-{n}-bare.dat')}' using 1:2 with steps lw 2 dt 2 title 'bare'"]
        for k, s in enumerate(systems):
            if s not in plotted:
                continue
            parts.append(f"'{pts}' using 2:(stringcolumn(1) eq '{s}' ? $3 : NaN) with points pt {7 + 2 * k} ps 1.2 "
                         f"title '{s} p50, p99'")
        panels.append([f"set title '{n} {NAMES.get(n, '')}'", "plot " + ", ".join(parts)])
    script += [
        "set terminal pngcairo size 1000,760 font 'sans,10' background rgb 'white'",
        f"set output '{os.path.join(args.plots, 'latency.png')}'",
        "unset style", "set style data lines", "set logscale x", "unset logscale y", "set yrange [0:1]",
        "set xlabel 'ack latency, µs (log scale)'", "set ylabel 'fraction acked within'", "set grid xtics ytics",
        "set key bottom right", f"set multiplot layout {(len(panels) + 1) // 2},2",
    ]
    for p in panels:
        script += p
    script.append("unset multiplot")
    gp = os.path.join(args.work, "plots.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    subprocess.run(["gnuplot", gp], check=True)


def update_md(path, text):
    md = open(path).read()
    section = (f"{BEGIN}\n## Latest: bench/compare\n\n{text}\n![Durable appends per second](bench/plots/throughput.png)\n\n"
               f"![Ack latency CDFs](bench/plots/latency.png)\n{END}")
    if BEGIN in md:
        md = md[:md.index(BEGIN)] + section + md[md.index(END) + len(END):]
    else:  # after the introduction, before the first section
        at = md.index("\n## ")
        md = md[:at] + "\n" + section + "\n" + md[at:]
    open(path, "w").write(md)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--dur", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--commit", default="?")
    ap.add_argument("--workload", action="append", required=True, help="'NAME CLIENTS INFLIGHT SIZE'")
    ap.add_argument("--plots")
    ap.add_argument("--benchmarks-md")
    args = ap.parse_args()
    text, summary, rows, systems = report(args)
    sys.stdout.write(text)
    if args.plots:
        plot(args, summary, rows, systems)
    if args.benchmarks_md:
        update_md(args.benchmarks_md, text)
        print(f"\nwrote {args.benchmarks_md} and {args.plots}/*.png", file=sys.stderr)


if __name__ == "__main__":
    main()
