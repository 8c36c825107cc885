# Plots bench/results/budget-*.json: decode tok/s against the DRAM budget (% of the model's
# weight bytes), ours and llama.cpp, log y axis, one PNG per model. Run by bench/plot.ts in
# a venv with matplotlib: python plot_budget.py <results.json> <out-prefix>
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def main() -> None:
    src, prefix = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    machine = data["machine"]
    written = []
    for model in dict.fromkeys(s["model"] for s in data["summaries"]):
        ss = [s for s in data["summaries"] if s["model"] == model]
        fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
        series = [
            ("ours (flash, sparsity 0.5)", lambda s: s["engine"] == "ours" and s.get("budgetPct") is not None and s.get("sparsity") == 0.5, "tab:blue", "o"),
            ("llama.cpp (mmap)", lambda s: s["engine"] == "llamacpp", "tab:red", "s"),
        ]
        floor = None
        for name, pick, color, marker in series:
            pts = sorted((s.get("budgetPct"), s["decodeTokensPerSecond"], s["statuses"]) for s in ss if pick(s))
            ok = [(x, y) for x, y, st in pts if y > 0]
            if ok:
                ax.plot([p[0] for p in ok], [p[1] for p in ok], color=color, marker=marker, label=name)
                lo = min(p[1] for p in ok)
                floor = lo if floor is None else min(floor, lo)
            for x, y, st in pts:
                if st != f"{st.split()[0]} ok":
                    # Not every run finished: say how they ended beside the point.
                    text = st if y > 0 else f"{name.split(' ')[0]}: {st}, no token"
                    ax.annotate(text, (x, y if y > 0 else (floor or 1)), textcoords="offset points", xytext=(4, 6 if color == "tab:blue" else -12), fontsize=7, color=color)
        for s in ss:
            if s["engine"] == "ours" and s.get("budgetPct") is None and s["decodeTokensPerSecond"] > 0:
                ax.axhline(s["decodeTokensPerSecond"], color="tab:blue", linestyle=":", linewidth=1, label="ours, whole model in DRAM (sp 0.5)")
            if s["engine"] == "ours" and s.get("sparsity") == 0 and s["decodeTokensPerSecond"] > 0:
                ax.plot([s.get("budgetPct")], [s["decodeTokensPerSecond"]], color="tab:gray", marker="^", linestyle="none", label="ours 100%, sparsity 0")
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("DRAM budget (% of the model's weight bytes); cgroup limit = budget + 256 MiB")
        ax.set_ylabel("decode tokens/s (median, log scale)")
        ax.set_xticks(data["settings"]["budgetsPct"])
        ax.invert_xaxis()
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.set_title(f"{model}: decode speed under a memory limit", fontsize=10)
        fig.text(0.01, 0.01, f"{machine['cpuModel']}, {machine['nproc']} cpus, load {machine['loadAvgAtStart'][0]:.1f}, {machine['date'][:10]}", fontsize=6, color="gray")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        out = f"{prefix}-{model}.png"
        fig.savefig(out)
        plt.close(fig)
        written.append(out)
    print("\n".join(written))


main()
