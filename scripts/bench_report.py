#!/usr/bin/env python3
"""Builds report.md (and chart.png) in a results folder of scripts/bench or scripts/bench-memory.

Reads meta.json and runs.json from the folder; scripts/bench and scripts/bench-memory call it
when they finish, and it can be re-run by hand on an existing folder:

    scripts/bench_report.py results/20250101-120000

Throughput report: per scenario and server thread count, the median over the rounds of ops/s,
p50/p99/p99.9 latency (µs) and server CPU µs per op, for the reference and the candidate server,
and the ratio candidate/reference (ops/s: higher is better; latency and CPU/op: lower is better).
Memory report: per value size, items kept, items per MB of -m, `bytes`, evictions, RSS and
RSS/(-m), with the same ratios.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import log, median  # noqa: E402

BENCH_METRICS = [  # (key in runs.json, column title, format)
    ("ops_per_s", "ops/s", "{:,.0f}"),
    ("p50_us", "p50 µs", "{:.0f}"),
    ("p99_us", "p99 µs", "{:.0f}"),
    ("p999_us", "p99.9 µs", "{:.0f}"),
    ("cpu_us_per_op", "CPU µs/op", "{:.2f}"),
]


def ensure_matplotlib() -> bool:
    """Imports matplotlib, installing it with pip first if it is missing."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    log("matplotlib missing: pip install matplotlib")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--root-user-action=ignore", "matplotlib"]
    if subprocess.run(cmd).returncode != 0:
        log("warning: pip install matplotlib failed; no chart.png")
        return False
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def fmt(v, spec: str) -> str:
    return "–" if v is None else spec.format(v)


def ratio(a, b) -> str:
    return "–" if a is None or b is None or a == 0 else f"{b / a:.2f}"


def machine_lines(meta: dict) -> list[str]:
    m = meta["machine"]
    mem = f"{m['mem_total_bytes'] / 2**30:.1f} GiB" if m.get("mem_total_bytes") else "?"
    lines = [
        "## Machine",
        "",
        f"- nproc: {m['nproc']}; CPU: {m['cpu_model']}; memory: {mem}",
        f"- kernel: {m['kernel']}",
        f"- memcached: {m.get('memcached_version')}; repository at {m.get('git_commit')}"
        + (" (uncommitted changes)" if m.get("git_dirty") else ""),
        f"- load average at start: {m.get('loadavg')}; at end: {meta.get('loadavg_end', '?')}",
    ]
    sb = meta.get("slabcached_bin")
    if isinstance(sb, dict):
        lines.append(f"- slabcached binary: `{sb['source']}` built {sb['mtime']}, "
                     f"sha256 {sb['sha256'][:16]}…, run from the copy `{sb['copy']}`")
    return lines


def bench_cells(meta: dict, runs: list[dict]):
    """{(scenario, threads): {label: {metric: median}}} plus failures per cell and label."""
    labels = [meta["reference"], meta["candidate"]]
    cells, failures = {}, {}
    for sc in meta["scenarios"]:
        for t in meta["threads"]:
            cell = {}
            for label in labels:
                rs = [r for r in runs if r["scenario"] == sc and r["threads"] == t and r["server"] == label]
                ok = [r for r in rs if r["ok"]]
                bad = [r for r in rs if not r["ok"]]
                if bad:
                    failures[(sc, t, label)] = bad[0]["failure"]
                cell[label] = ({k: median([r.get(k) for r in ok]) for k, _, _ in BENCH_METRICS}
                               | {"n": len(ok), "of": len(rs)}) if ok else None
            cells[(sc, t)] = cell
    return labels, cells, failures


def bench_table(meta: dict, runs: list[dict]) -> str:
    labels, cells, failures = bench_cells(meta, runs)
    ref, cand = labels
    head = ["scenario", "-t"]
    for _, title, _ in BENCH_METRICS:
        head += [f"{title} {ref}", f"{title} {cand}", "ratio"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (sc, t), cell in cells.items():
        a, b = cell[ref], cell[cand]
        row = [sc, str(t)]
        for key, _, spec in BENCH_METRICS:
            va = a[key] if a else None
            vb = b[key] if b else None
            row += [fmt(va, spec) if a else "FAIL", fmt(vb, spec) if b else "FAIL", ratio(va, vb)]
        rows.append("| " + " | ".join(row) + " |")
    text = "\n".join(rows)
    partial = [(k, c) for k, cell in cells.items() for c in cell.values() if c and c["n"] < c["of"]]
    notes = []
    if partial:
        notes.append("Some cells are medians over fewer rounds than planned (the other runs failed).")
    for (sc, t, label), why in failures.items():
        notes.append(f"- {sc} -t {t} {label}: {why}")
    return text + ("\n\n" + "\n".join(notes) if notes else "")


def bench_console(meta: dict, runs: list[dict]) -> str:
    """A fixed-width table for the terminal: per metric `reference candidate ratio`."""
    labels, cells, failures = bench_cells(meta, runs)
    ref, cand = labels
    widths = [18, 12, 12, 12, 12, 12]

    def row(cells_: list[str]) -> str:
        return f"{cells_[0]:<{widths[0]}}" + "".join(f"{c:>{w}}" for c, w in zip(cells_[1:], widths[1:]))

    out = [f"medians; each metric: {ref} / {cand} / ratio {cand}/{ref}",
           row(["scenario -t"] + [t for _, t, _ in BENCH_METRICS])]
    for (sc, t), cell in cells.items():
        a, b = cell[ref], cell[cand]
        lines = [[f"{sc} -t {t}"], [""], ["  ratio"]]
        for key, _, spec in BENCH_METRICS:
            va = a[key] if a else None
            vb = b[key] if b else None
            lines[0].append(fmt(va, spec) if a else "FAIL")
            lines[1].append(fmt(vb, spec) if b else "FAIL")
            lines[2].append(ratio(va, vb) + "x" if va and vb is not None else "–")
        out += [row(line) for line in lines]
    out += [f"FAILED {sc} -t {t} {label}: {why}" for (sc, t, label), why in failures.items()]
    return "\n".join(out)


def bench_chart(meta: dict, runs: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels, cells, _ = bench_cells(meta, runs)
    ref, cand = labels
    names = [f"{sc}\n-t {t}" for sc, t in cells]
    n_metrics = len(BENCH_METRICS)
    width = 0.8 / n_metrics
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(names)), 5))
    for i, (key, title, _) in enumerate(BENCH_METRICS):
        xs, ys = [], []
        for j, cell in enumerate(cells.values()):
            a, b = cell[ref], cell[cand]
            if a and b and a[key] and b[key] is not None:
                xs.append(j + (i - (n_metrics - 1) / 2) * width)
                ys.append(b[key] / a[key])
        ax.bar(xs, ys, width, label=title)
    for j, cell in enumerate(cells.values()):
        failed = [lbl for lbl in (ref, cand) if not cell[lbl]]
        if failed:
            ax.text(j, 0.05, "FAILED:\n" + "\n".join(failed), ha="center", va="bottom",
                    fontsize=8, color="darkred")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel(f"{cand} / {ref}")
    ax.set_title(f"{cand} / {ref}, medians of {meta['rounds']} rounds "
                 "(ops/s: higher is better; latency, CPU/op: lower is better)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def bench_report(out: Path, meta: dict, runs: list[dict]) -> str:
    table = bench_table(meta, runs)
    chart = bench_chart(meta, runs, out / "chart.png")
    ref, cand = meta["reference"], meta["candidate"]
    lines = [
        f"# Throughput benchmark: {cand} vs {ref}",
        "",
        f"Command: `{meta['command']}` (started {meta['started']}, "
        f"{meta.get('elapsed_s', '?')} s of runs)",
        "",
        f"Median of {meta['rounds']} rounds per server, the servers alternating "
        f"({ref}, {cand}, {ref}, ...), each run on a fresh server. Ratio = {cand} / {ref}: "
        "above 1 is better for ops/s, below 1 is better for latency and CPU/op. "
        f"Measured window {meta['duration']} s after {meta['warmup']} s of warm-up. "
        "CPU µs/op = server utime+stime over the measured window / requests "
        "(a 100-key multi-get is one request).",
        "",
        table,
        "",
    ]
    if chart:
        lines += ["![ratios](chart.png)", ""]
    lines += machine_lines(meta)
    lines += ["", "## Setup", "",
              f"- servers: `{meta['server_flags']}`",
              f"- loadgen, every scenario: `{meta['loadgen_common']}`", ""]
    lines += ["| scenario | what | loadgen flags |", "|---|---|---|"]
    for name, s in meta["scenarios"].items():
        lines.append(f"| {name} | {s['description']} | `{s['loadgen']}` |")
    lines += ["", "## All runs", "",
              "| scenario | -t | server | round | ops/s | p50 | p99 | p99.9 | CPU µs/op | "
              "loadgen CPU s | errors | status |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        status = "ok" if r["ok"] else "FAILED: " + str(r["failure"]).replace("|", "/")[:160]
        lines.append(
            f"| {r['scenario']} | {r['threads']} | {r['server']} | {r['round']} | "
            f"{fmt(r.get('ops_per_s'), '{:,.0f}')} | {fmt(r.get('p50_us'), '{:.0f}')} | "
            f"{fmt(r.get('p99_us'), '{:.0f}')} | {fmt(r.get('p999_us'), '{:.0f}')} | "
            f"{fmt(r.get('cpu_us_per_op'), '{:.2f}')} | {fmt(r.get('client_cpu_s'), '{:.2f}')} | "
            f"{fmt(r.get('errors'), '{}')} | {status} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return bench_console(meta, runs)


MEMORY_METRICS = [  # (key, title, format)
    ("curr_items", "items kept", "{:,.0f}"),
    ("est_items", "items found (spot check)", "{:,.0f}"),
    ("items_per_mb", "items/MB of -m", "{:,.0f}"),
    ("bytes", "bytes (stats)", "{:,.0f}"),
    ("evictions", "evictions", "{:,.0f}"),
    ("rss_mb", "RSS MB", "{:.1f}"),
    ("rss_over_m", "RSS/(-m)", "{:.2f}"),
]


def memory_table(meta: dict, runs: list[dict]) -> str:
    ref, cand = meta["reference"], meta["candidate"]
    head = ["value size", "keys written"]
    for _, title, _ in MEMORY_METRICS:
        head += [f"{title} {ref}", f"{title} {cand}", "ratio"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for size in meta["value_sizes"]:
        rs = {r["server"]: r for r in runs if r["value_size"] == size}
        a, b = rs.get(ref), rs.get(cand)
        row = [f"{size} B", fmt((a or b or {}).get("keys"), "{:,}")]
        for key, _, spec in MEMORY_METRICS:
            va = a.get(key) if a and a["ok"] else None
            vb = b.get(key) if b and b["ok"] else None
            row += [fmt(va, spec) if a and a["ok"] else "FAIL",
                    fmt(vb, spec) if b and b["ok"] else "FAIL", ratio(va, vb)]
        rows.append("| " + " | ".join(row) + " |")
        for r in (a, b):
            if r and not r["ok"]:
                notes.append(f"- {size} B {r['server']}: {r['failure']}")
            elif r and r.get("fill_errors"):
                notes.append(f"- {size} B {r['server']}: {r['fill_errors']} fill errors")
    return "\n".join(rows) + ("\n\n" + "\n".join(notes) if notes else "")


def memory_console(meta: dict, runs: list[dict]) -> str:
    ref, cand = meta["reference"], meta["candidate"]
    short = ["items", "found", "items/MB", "bytes", "evictions", "RSS MB", "RSS/-m"]
    widths = [10] + [13] * len(short)
    out = [f"-m {meta['memory_mb']}; each size: {ref} / {cand} / ratio {cand}/{ref}",
           f"{'value':<10}" + "".join(f"{h:>13}" for h in short)]
    for size in meta["value_sizes"]:
        rs = {r["server"]: r for r in runs if r["value_size"] == size}
        a, b = rs.get(ref), rs.get(cand)
        lines = [[f"{size} B"], [""], ["  ratio"]]
        for key, _, spec in MEMORY_METRICS:
            va = a.get(key) if a and a["ok"] else None
            vb = b.get(key) if b and b["ok"] else None
            lines[0].append(fmt(va, spec) if a and a["ok"] else "FAIL")
            lines[1].append(fmt(vb, spec) if b and b["ok"] else "FAIL")
            lines[2].append(ratio(va, vb) + "x" if va and vb is not None else "–")
        out += [f"{line[0]:<{widths[0]}}" + "".join(f"{c:>{w}}" for c, w in zip(line[1:], widths[1:]))
                for line in lines]
    for r in runs:
        if not r["ok"]:
            out.append(f"FAILED {r['value_size']} B {r['server']}: {r['failure']}")
    return "\n".join(out)


def memory_report(out: Path, meta: dict, runs: list[dict]) -> str:
    table = memory_table(meta, runs)
    ref, cand = meta["reference"], meta["candidate"]
    lines = [
        f"# Memory efficiency: {cand} vs {ref}",
        "",
        f"Command: `{meta['command']}` (started {meta['started']})",
        "",
        f"Each server started fresh with `-m {meta['memory_mb']}` ({meta['server_flags']}), then "
        f"filled with distinct keys carrying {meta['fill_factor']}x the memory limit in key+value "
        "bytes (loadgen preload, pipelined noreply sets), then `stats` and /proc/<pid>/status "
        "VmRSS read. Items found = share of 1000 random keys of the fill that `get` still finds, "
        "times the keys written (a cross-check of curr_items). "
        f"Ratio = {cand} / {ref}: above 1 is better for items kept and items/MB, "
        "below 1 is better for RSS.",
        "",
        table,
        "",
    ]
    lines += machine_lines(meta)
    lines += ["", "## Fill commands", ""]
    for r in runs:
        lines.append(f"- {r['value_size']} B {r['server']}: `{' '.join(r.get('cmd', []))}` "
                     f"({fmt(r.get('fill_s'), '{:.1f}')} s)")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return memory_console(meta, runs)


def generate(out: Path) -> str:
    """Writes report.md (and chart.png) in `out`; returns the main table for the terminal."""
    meta = json.loads((out / "meta.json").read_text())
    runs = json.loads((out / "runs.json").read_text())
    if meta["kind"] == "memory":
        return memory_report(out, meta, runs)
    return bench_report(out, meta, runs)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} results/<timestamp>")
    print(generate(Path(sys.argv[1])))
