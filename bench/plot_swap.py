# Plots a bench/results/swap-*.json: decode tok/s against the DRAM budget for our engine (each
# cache policy, its best thread count), llama.cpp with mmap under the same limit, our engine with
# the whole model in DRAM, and the bound (device curve against the in-DRAM time).
#   python plot_swap.py <results.json> <out.png>   (prints the PNG path)
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
    pct = lambda b: float(b.rstrip("%"))  # noqa: E731
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for c in d["configs"]:
        pts = sorted((pct(x["budget"]), x["tokensPerSecond"]) for x in s if x["config"] == c)
        if pts:
            ax.plot([p for p, _ in pts], [t for _, t in pts], marker="o", label=f"ours, {c} cache")
    first = d["configs"][0]
    ll = sorted((pct(x["budget"]), x["llamaTokensPerSecond"]) for x in s if x["config"] == first and x["llamaTokensPerSecond"] is not None)
    if ll:
        ax.plot([p for p, _ in ll], [t for _, t in ll], marker="s", color="tab:red", label="llama.cpp mmap (Q4_1)")
    bd = sorted((pct(x["budget"]), x["boundTokensPerSecond"]) for x in s if x["config"] == first and x["boundTokensPerSecond"])
    if bd:
        ax.plot([p for p, _ in bd], [t for _, t in bd], linestyle="--", color="gray", label="bound (device curve vs in-DRAM)")
    dram = next((x["inDramTokensPerSecond"] for x in s if x["inDramTokensPerSecond"]), None)
    if dram:
        ax.axhline(dram, color="black", linestyle=":", label="ours, whole model in DRAM")
    ax.set_xlabel("DRAM budget (% of the model's weight bytes; limit = budget + 256 MiB)")
    ax.set_ylabel("decode tokens/s")
    ax.set_yscale("log")
    ax.set_title(f"{d['label']}: sparsity {d['sparsity']}, {d['model'].split('/')[-1]}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    print(png)


main()
