// How the engine picks a linear site's inputs (issue 13): magnitude keeps x_j when |x_j| > t;
// weight keeps it when |x_j| x ||W[:, j]|| > t, the output error skipping it adds
// (columnNorms.ts). Thresholds are calibrated on the rule's score.
export type Selection = "weight" | "magnitude";
export const SELECTIONS: readonly Selection[] = ["weight", "magnitude"];
// `activeflow calibrate`'s default: magnitude, which beat weight-aware on SmolLM2-135M at every
// level measured at the same bytes read (bench/README.md, "Quality: weight-aware ...").
export const DEFAULT_SELECTION: Selection = "magnitude";
