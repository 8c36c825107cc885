# Issue 9, item 5: decode tok/s against the device for on-demand loading and preloading, from
# bench:swap results of one model and budget on several devices (each run with --configs
# X,X+preload), with each device's best 64 KiB read bandwidth from its bench:roofline result.
#   python plot_preload.py <out.png> <device>=<swap.json>[:<roofline.json>] ...
# Writes <out.png> and <out>.json (per device: both tok/s, their ratio, the crossover if any).
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def best_bandwidth(roofline: str, size: int) -> float | None:
    with open(roofline) as f:
        r = json.load(f)
    pts = [p for p in r["points"] if p["bytes"] == size]
    return max(p["bytesPerSecond"] for p in pts) / 1e9 if pts else None


def main() -> None:
    png, specs = sys.argv[1], sys.argv[2:]
    rows = []
    for spec in specs:
        device, files = spec.split("=", 1)
        swap, _, roof = files.partition(":")
        with open(swap) as f:
            s = json.load(f)["summary"]
        demand = [x for x in s if not x["config"].endswith("+preload")]
        pre = [x for x in s if x["config"].endswith("+preload")]
        if not demand or not pre:
            raise SystemExit(f"{swap}: needs an on-demand and a +preload config")
        d, p = demand[0], pre[0]
        rows.append({
            "device": device, "swap": swap, "roofline": roof or None, "budget": d["budget"],
            "gbps64k": best_bandwidth(roof, 65536) if roof else None,
            "onDemand": d["tokensPerSecond"], "preload": p["tokensPerSecond"],
            "ratio": p["tokensPerSecond"] / d["tokensPerSecond"],
            "bytesPerTokenOnDemand": d["flashBytesPerToken"], "bytesPerTokenPreload": p["flashBytesPerToken"],
        })
    wins = [r["device"] for r in rows if r["ratio"] > 1]
    out = {"devices": rows, "preloadWinsOn": wins,
           "crossover": "none measured: preloading lost on every device" if not wins else f"preloading wins on {', '.join(wins)}"}
    with open(png.rsplit(".", 1)[0] + ".json", "w") as f:
        json.dump(out, f, indent=1)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    xs = list(range(len(rows)))
    w = 0.38
    ax.bar([x - w / 2 for x in xs], [r["onDemand"] for r in rows], w, label="on demand")
    ax.bar([x + w / 2 for x in xs], [r["preload"] for r in rows], w, label="preload (cross-layer prediction)")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r['device']}\n{r['gbps64k']:.2f} GB/s at 64 KiB" if r["gbps64k"] else r["device"] for r in rows])
    for x, r in zip(xs, rows):
        ax.text(x + w / 2, r["preload"], f"{r['ratio']:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("decode tok/s")
    ax.set_title(f"preload vs on-demand by device (budget {rows[0]['budget']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    print(png)


if __name__ == "__main__":
    main()
