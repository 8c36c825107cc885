# Plots a bench/results/quality-*.json: weight bytes read per token against perplexity (left)
# and against top-1 agreement with the dense model (right), undistilled and distilled models,
# one point per sparsity. Run by bench/quality.ts in the matplotlib venv:
#   python plot_quality.py <results.json> <out.png>   (prints the PNG path)
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    src, png = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    rows = [r for r in data["results"] if r["engine"] == "gguf"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=120)
    # Undistilled rows by selection rule (rows before weight-aware selection are magnitude);
    # the dense row (sparsity 0) starts both curves.
    sel = lambda r: r.get("selection", "magnitude")  # noqa: E731
    und = lambda r, rule: r["model"] == "undistilled" and (r["sparsity"] == 0 or sel(r) == rule)  # noqa: E731
    series = [
        ("undistilled, magnitude |x|", lambda r: und(r, "magnitude"), "tab:blue", "o", "-"),
        ("undistilled, weight-aware |x| x ||W col||", lambda r: und(r, "weight"), "tab:red", "D", "-"),
        ("distilled, own thresholds", lambda r: r["model"] == "distilled" and r["thresholds"] == "own", "tab:green", "s", "none"),
        ("distilled, source thresholds", lambda r: r["model"] == "distilled" and r["thresholds"] == "source", "tab:orange", "^", "none"),
    ]
    for ax, key, label, log in [(axes[0], "ppl", "perplexity (wiki.test.raw)", True), (axes[1], "top1_agreement", "top-1 agreement with dense", False)]:
        for name, pick, color, marker, ls in series:
            if name.endswith("||") and not any(sel(r) == "weight" for r in rows):
                continue
            pts = sorted((r["weight_bytes_per_token"] / 1e6, r[key], r["sparsity"], r.get("distilled_for")) for r in rows if pick(r))
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, linestyle=ls, label=name)
            for x, y, s, d in pts:
                tag = f"s={s:g}" if d is None else f"s={s:g} (d{d:g})"
                ax.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
        ax.set_xlabel("weight MB read per token (active fraction x matrix bytes + head)")
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    missing = data.get("missing_distilled") or []
    title = f"{data['model'].split('/')[-1]}: {data['tokens_scored']} tokens"
    if missing:
        title += f" (no distilled model for s={', '.join(f'{m:g}' for m in missing)})"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png)
    print(png)


if __name__ == "__main__":
    main()
