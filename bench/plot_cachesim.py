# Plots a bench/results/cachesim-*.json: left, decode hit rate (share of active bytes served
# by the cache) against cache size per policy on the evaluation trace, with the cache the
# engine gets at --dram 35% for each column format, the 40 % target and the paper's 54-74 %;
# right, flash bytes per decode token and mean device-read size per record layout and merge gap
# at today's cache size. Run by bench/cachesim.ts in the matplotlib venv:
#   python plot_cachesim.py <results.json> <out.png>   (prints the PNG path)
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SHOWN = ["lfu-engine", "lru", "arc", "lfu-decay-64", "lfu-forever", "static", "static80+lru", "static-global", "global-split+lfu-decay-64", "static-hindsight", "bound"]
LABEL = {"lfu-engine": "lfu-engine (today)", "bound": "bound of the proportional split"}
STYLE = {"static-hindsight": ":", "bound": "--"}


def main() -> None:
    src, png = sys.argv[1], sys.argv[2]
    with open(src) as f:
        d = json.load(f)
    rows = [r for r in d["hitRates"]["evaluation"] if r["mode"] == "warm"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), dpi=120)
    for i, name in enumerate(SHOWN):
        pts = sorted((r["cacheFraction"], r["decodeHitRate"]["bytes"]) for r in rows if r["policy"] == name)
        if pts:
            ax.plot([100 * p[0] for p in pts], [100 * p[1] for p in pts], marker=".", color=plt.cm.tab20(i / 20 * 1.8), linestyle=STYLE.get(name, "-"), label=LABEL.get(name, name))
    ax.axhspan(54, 74, color="tab:green", alpha=0.08, label="paper: 54-74 % (task level)")
    ax.axhline(40, color="gray", linewidth=0.8, linestyle="-.", label="issue 9 target: 40 %")
    for g, color in zip(d["geometry"], ["black", "tab:red", "tab:purple"]):
        ax.axvline(100 * g["cacheFraction"], color=color, linewidth=0.9, linestyle=":")
        ax.text(100 * g["cacheFraction"], 96, f' 35 %: {g["format"]}', rotation=90, va="top", fontsize=7, color=color)
    ax.set_xlabel("cache size (% of every extent's records)")
    ax.set_ylabel("decode hit rate (% of active bytes from the cache)")
    ax.set_title("SmolLM2 at sparsity 0.5, evaluation trace (warm)", fontsize=10)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")

    q8 = d["geometry"][0]["format"]
    reads = [r for r in d["reads"] if r["format"] == q8]
    policies = []
    for r in reads:
        if r["policy"] not in policies:
            policies.append(r["policy"])
    pol = policies[-1]
    sel = [r for r in reads if r["policy"] == pol]
    layouts = []
    for r in sel:
        if r["layout"] not in layouts:
            layouts.append(r["layout"])
    gaps = sorted({r["gap"] for r in sel})
    width = 0.8 / len(gaps)
    for gi, g in enumerate(gaps):
        ys = [next(r for r in sel if r["layout"] == lay and r["gap"] == g) for lay in layouts]
        xs = [i + gi * width for i in range(len(layouts))]
        bars = bx.bar(xs, [y["bytesPerToken"] / 1e6 for y in ys], width=width, label=f"gap {g // 1024} KiB")
        for b, y in zip(bars, ys):
            bx.text(b.get_x() + b.get_width() / 2, b.get_height(), f'{y["meanReadBytes"] / 1024:.0f}K', ha="center", va="bottom", fontsize=6)
    miss = sel[0]["missRecordBytesPerToken"] / 1e6
    bx.axhline(miss, color="black", linewidth=0.8, linestyle="--", label=f"missed records: {miss:.1f} MB")
    bx.set_xticks([i + 0.4 - width / 2 for i in range(len(layouts))])
    bx.set_xticklabels(layouts, rotation=15, fontsize=8)
    bx.set_ylabel("flash MB read per decode token (labels: mean read size)")
    bx.set_title(f"{q8}, 35 % budget, policy {pol}", fontsize=10)
    bx.grid(axis="y", alpha=0.3)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png)
    print(png)


if __name__ == "__main__":
    main()
