"""Reporting for `official.attention.bench`: log-log slopes, the markdown
tables (points, slopes, ratios to torch SDPA, paired ratios, decoding), the
CSV files and the time / memory plot. Pure functions of the result rows the
bench's workers return; nothing here runs a kernel."""

import csv
import json
import math


MIN_MEMORY_MB = 8.0  # below this, RSS deltas are allocator noise


def loglog_slope(xs, ys, floor=0.0):
    """Least-squares slope of log(y) vs log(x) over points with y > floor;
    None if fewer than 2 such points."""
    pts = [
        (math.log(x), math.log(y))
        for x, y in zip(xs, ys)
        if y is not None and y > floor and y > 0
    ]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def slopes(results):
    out = {}
    for kernel in dict.fromkeys(r["kernel"] for r in results):
        ok = [
            r for r in results if r["kernel"] == kernel and r["status"] == "ok"
        ]
        ls = [r["length"] for r in ok]
        out[kernel] = dict(
            time=loglog_slope(ls, [r["time_ms"] for r in ok]),
            memory=loglog_slope(
                ls, [r["peak_mb"] for r in ok], floor=MIN_MEMORY_MB
            ),
        )
    return out


def decode_slopes(decode):
    """{(mode, kernel): log-log slope of ms/token vs context} (None with
    fewer than two contexts)."""
    out = {}
    for key in dict.fromkeys((r["mode"], r["kernel"]) for r in decode):
        ok = [
            r
            for r in decode
            if (r["mode"], r["kernel"]) == key and r["status"] == "ok"
        ]
        out[key] = loglog_slope(
            [r["length"] for r in ok], [r["time_ms"] for r in ok]
        )
    return out


def _fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def _point_rows(rows, width, cells):
    """Markdown rows "| kernel | L | cells(r)... |" (`width` cells); a point
    that did not run shows its status in the first cell, the others empty."""
    lines = []
    for r in rows:
        if r["status"] == "ok":
            values = cells(r)
        else:
            values = [r["status"]] + [""] * (width - 1)
        lines.append(
            "| " + " | ".join([r["kernel"], str(r["length"])] + values) + " |"
        )
    return lines


def markdown(results, decode, slope, header, paired=()):
    lines = [
        header,
        "",
        "| kernel | L | time / forward (ms) | compile (s) | "
        "peak RSS incl. compile (MB) | peak RSS of runs (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += _point_rows(
        results,
        4,
        lambda r: [
            f"{r['time_ms']:.1f}",
            f"{r['compile_s']:.1f}",
            f"{r['peak_mb']:.0f}",
            f"{r['run_peak_mb']:.0f}",
        ],
    )
    lines += [
        "",
        "| kernel | log-log slope time | log-log slope peak memory "
        f"(points > {MIN_MEMORY_MB:.0f} MB) |",
        "|---|---:|---:|",
    ]
    for k, s in slope.items():
        lines.append(
            f"| {k} | {_fmt(s['time'], '.2f')} | {_fmt(s['memory'], '.2f')} |"
        )
    torch = {
        r["length"]: r
        for r in results
        if r["kernel"] == "torch_sdpa" and r["status"] == "ok"
    }
    if torch:
        lines += [
            "",
            "| kernel | L | time / torch SDPA time |",
            "|---|---:|---:|",
        ]
        for r in results:
            if (
                r["status"] == "ok"
                and r["length"] in torch
                and (r["kernel"] != "torch_sdpa")
            ):
                ratio = r["time_ms"] / torch[r["length"]]["time_ms"]
                lines.append(f"| {r['kernel']} | {r['length']} | {ratio:.2f} |")
    if paired:
        lines += [
            "",
            "| kernel | L | time / torch SDPA time, paired (median over "
            "rounds) | range over rounds | rounds |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += _point_rows(
            paired,
            3,
            lambda r: [
                f"{r['ratio']:.2f}",
                f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}",
                str(r["rounds"]),
            ],
        )
    if decode:
        lines += [
            "",
            "| decode (1 new token) | context | ms / token | "
            "tokens / s | speed-up vs recompute |",
            "|---|---:|---:|---:|---:|",
        ]
        base = {
            r["length"]: r
            for r in decode
            if r["mode"] == "recompute" and r["status"] == "ok"
        }
        for r in decode:
            name = (
                "recompute full causal forward"
                if r["mode"] == "recompute"
                else "1-query decode"
            ) + f" ({r['kernel']})"
            if r["status"] != "ok":
                lines.append(
                    f"| {name} | {r['length']} | {r['status']} | | |"
                )
                continue
            tps = 1e3 / r["time_ms"]
            ref = base.get(r["length"])
            up = ref["time_ms"] / r["time_ms"] if ref else None
            lines.append(
                f"| {name} | {r['length']} | {r['time_ms']:.3f} | "
                f"{tps:.1f} | {_fmt(up, '.1f')} |"
            )
        dslope = decode_slopes(decode)
        if any(v is not None for v in dslope.values()):
            lines += [
                "",
                "| decode method | log-log slope of time / token vs context |",
                "|---|---:|",
            ]
            for (mode, kernel), v in dslope.items():
                lines.append(f"| {mode} ({kernel}) | {_fmt(v, '.2f')} |")
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "options"))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys + ["options"])
        w.writeheader()
        for r in rows:
            w.writerow(dict(r, options=json.dumps(r.get("options", {}))))


def plot(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    # Ten colours, then a new line style: no two kernels look alike.
    styles = ("o-", "s--", "^:", "d-.")
    kernels = list(dict.fromkeys(r["kernel"] for r in results))
    for index, kernel in enumerate(kernels):
        ok = [
            r for r in results if r["kernel"] == kernel and r["status"] == "ok"
        ]
        if not ok:
            continue
        ls = [r["length"] for r in ok]
        look = dict(color=f"C{index % 10}", label=kernel)
        style = styles[(index // 10) % len(styles)]
        axes[0].plot(ls, [r["time_ms"] for r in ok], style, **look)
        axes[1].plot(
            ls, [max(r["peak_mb"], 0.1) for r in ok], style, **look
        )
    for ax, title in zip(
        axes, ["time / forward (ms)", "peak RSS incl. compile (MB)"]
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize="small")
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
