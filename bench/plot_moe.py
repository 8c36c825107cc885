# Plots a bench/results/moe-*.json: decode tok/s of each configuration (ours with and without
# pre-gating, llama.cpp mmap on the Q4_1 file) under the same DRAM limit, with the bound.
#   python plot_moe.py <results.json> <out.png>   (prints the PNG path)
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    src, png = sys.argv[1], sys.argv[2]
    with open(src) as f:
        d = json.load(f)
    s = d.get("summary") or []
    names = [f"{x['engine']} {x['config']} t{x['threads']}" for x in s]
    vals = [x["tokensPerSecond"] for x in s]
    colors = ["tab:blue" if x["engine"] == "ours" else "tab:red" for x in s]
    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=120)
    ax.bar(names, vals, color=colors)
    bounds = [x["bound"]["boundTokensPerSecond"] for x in s if x.get("bound")]
    if bounds:
        ax.axhline(bounds[0], color="black", linestyle="--", label="bound (experts the pool cannot hold, at the device's best rate)")
        ax.legend(fontsize=8)
    ax.set_ylabel("decode tok/s (median)")
    ax.set_title(f"MoE under {d['budget']} of {d['weightBytes'] / 2**30:.1f} GiB ({d['budgetBytes'] / 2**20:.0f} MiB), {d['label']}", fontsize=9)
    plt.xticks(rotation=15, fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    print(png)


main()
