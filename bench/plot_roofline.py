# Plots a bench/results/roofline-*.json: the device's random-read bandwidth by read size, one
# line per queue depth (left), and the flash seconds per token of each read strategy per budget
# and cache layout against the DRAM time (right).
#   python plot_roofline.py <results.json> <out.png>   (prints the PNG path)
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    src, png = sys.argv[1], sys.argv[2]
    with open(src) as f:
        d = json.load(f)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=120)
    qds = sorted({p["queueDepth"] for p in d["points"]})
    for qd in qds:
        pts = sorted((p["bytes"], p["bytesPerSecond"]) for p in d["points"] if p["queueDepth"] == qd)
        a.plot([x / 1024 for x, _ in pts], [y / 1e9 for _, y in pts], marker="o", label=f"qd {qd}")
    a.set_xscale("log", base=2)
    a.set_xlabel("read size (KiB)")
    a.set_ylabel("GB/s")
    a.set_title(f"random reads, {d['label']} (O_DIRECT, {d['points'][0].get('backend', 'io_uring')})")
    a.grid(True, alpha=0.3)
    a.legend(fontsize=8)
    strategies = list(d["bounds"][0]["secondsByStrategy"].keys())
    labels = [f"{x['budget']} {x['layout']}" for x in d["bounds"]]
    w = 0.8 / (len(strategies) + 1)
    for i, s in enumerate(strategies):
        b.bar([k + i * w for k in range(len(labels))], [x["secondsByStrategy"][s] for x in d["bounds"]], w, label=s)
    b.bar([k + len(strategies) * w for k in range(len(labels))], [x["dramSeconds"] for x in d["bounds"]], w, label="DRAM", color="black")
    b.set_xticks([k + 0.4 for k in range(len(labels))])
    b.set_xticklabels(labels, fontsize=8)
    b.set_ylabel("seconds per token")
    b.set_title(f"flash time by read strategy, sparsity {d['sparsity']} (random activations)")
    b.legend(fontsize=7, ncol=2)
    b.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png)
    print(png)


main()
