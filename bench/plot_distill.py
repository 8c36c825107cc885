# Plots distillation training curves (<out>.curves.json, written by python -m activeflow_distill):
# train KL(dense || sparse) per step over the global batch, and the held-out KL points, one line
# per file (e.g. the same run on 1 and 2 processes), and below each later file's relative difference
# from the first at every step. Run in the matplotlib venv:
#   ~/.cache/activeflow/bench-venv/bin/python bench/plot_distill.py <out.png> <a.curves.json> [b.curves.json ...]
# A file may also be a bench result holding a list of them under "curves". Prints the PNG path.
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(c: dict) -> str:
    if c.get("label"):
        return c["label"]
    if c["processes"] == 1:
        how = "1 process" if c.get("accumulate", 1) == 1 else f"1 process, {c['accumulate']} micro-batches"
    else:
        how = f"{c['processes']} processes ({c['backend']}, {'FSDP' if c['fsdp'] else 'DDP'}, {c['batch_per_process']} window(s) each)"
    return f"{how}, batch {c['batch']}"


def main() -> None:
    png, files = sys.argv[1], sys.argv[2:]
    if not files:
        sys.exit("usage: plot_distill.py <out.png> <curves.json> [...]")
    fig, (ax, dx) = plt.subplots(2, 1, figsize=(8, 6.4), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    styles = [("tab:blue", "-", "o"), ("tab:orange", "--", "s"), ("tab:green", ":", "^"), ("tab:red", "-.", "D")]
    runs = []
    for path in files:
        with open(path) as f:
            c = json.load(f)
        runs.extend(c["curves"] if "curves" in c else [c])
    first = None
    for i, c in enumerate(runs):
        first = first or c
        if i > 0:
            ref = {s["step"]: s["train_kl"] for s in first["steps"]}
            pts = [(s["step"], abs(s["train_kl"] - ref[s["step"]]) / ref[s["step"]]) for s in c["steps"] if s["step"] in ref]
            dx.plot([p[0] for p in pts], [max(p[1], 1e-12) for p in pts], color=styles[i % len(styles)][0], marker=".", label=label(c))
        color, ls, marker = styles[i % len(styles)]
        steps = c["steps"]
        ax.plot([s["step"] for s in steps], [s["train_kl"] for s in steps], color=color, linestyle=ls, label=f"train KL, {label(c)}")
        val = c["val"]
        ax.plot([v["step"] for v in val], [v["val_kl"] for v in val], color=color, linestyle="none", marker=marker, label=f"held-out KL, {label(c)}")
    dx.set_xlabel("step")
    dx.set_yscale("log")
    dx.set_ylabel("|train KL - first| / first", fontsize=8)
    dx.grid(alpha=0.3)
    if len(runs) > 1:
        dx.legend(fontsize=7)
    ax.set_ylabel("KL(dense || sparse student)")
    name = first["model"].rsplit("/", 1)[-1]
    ax.set_title(f"distillation of {name} at sparsity {first['sparsity']:g} (lr {first['lr']:g}, seed {first['seed']})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png)
    print(png)


if __name__ == "__main__":
    main()
