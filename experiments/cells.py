"""Which cell remembers the planted dependency, and for how long? LSTM, GRU and RNN side by side.

    python experiments/cells.py --checkpoints runs/planted/lstm.npz runs/planted/gru.npz \
        runs/planted/rnn.npz --results figures/cells-planted/results.json \
        --out-dir figures/cells-planted

Reads one analysis of LMs of the planted language (analyze.py --average class, state h, which
every cell has) and their checkpoints (the perplexity and the parameter count), and writes
cells.png/.pdf (m and sigma_1 of the property's class average against the delay, one curve per
LM) and cells.md/.csv: per LM its cell, H, parameters, validation perplexity next to the language's
two bounds (tool.languages.planted_perplexity) with the share of the number it keeps at the verb,
the mean m and r_abs over delays 1..D and past D + 1, and how far it carries the property: the
largest delay whose r_abs is still a tenth of its largest.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tool import outputs  # noqa: E402
from tool.checkpoints import load_checkpoint  # noqa: E402
from tool.languages import planted_perplexity  # noqa: E402


def curve(values):
    """A results.json curve (None where undefined) as floats with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def rows_of(results, checkpoints, prop, state):
    """One row per LM of the table, and its m and sigma_1 curves for the figure."""
    settings = load_checkpoint(checkpoints[0])[2]["settings"]
    D, fixed = settings["max_distance"], settings["fixed_distance"]
    best, forgetful = planted_perplexity(D, fixed), planted_perplexity(D, fixed, False)
    rows, curves = [], {}
    for model, path in zip(results["models"], checkpoints):
        params, _, meta, _ = load_checkpoint(path)
        memory = model["figure2_class"][state][prop]
        m, r, r_abs = curve(memory["m"]), curve(memory["r"]), curve(memory["r_abs"])
        sigma1 = r / m                                             # m = r / sigma_1 (eq. 6)
        ppl = meta["train"]["best_valid_ppl"]
        far = int(np.flatnonzero(r_abs >= 0.1 * np.nanmax(r_abs)).max())
        near, past = slice(1, D + 1), slice(D + 2, None)
        rows.append([model["checkpoint"], model["cell"], model["hidden_size"],
                     f"{sum(a.size for a in params.values()):,}", f"{ppl:.2f}",
                     f"{(forgetful - ppl) / (forgetful - best):.2f}",
                     f"{np.nanmean(m[near]):.2f}", f"{np.nanmean(m[past]):.2f}",
                     f"{np.nanmean(r_abs[near]):.3f}", f"{np.nanmean(r_abs[past]):.4f}", far])
        curves[model["checkpoint"]] = (m, sigma1)
    header = ["LM", "cell", "H", "parameters", f"valid ppl (bounds {best:.2f}, {forgetful:.2f})",
              "number kept", f"m, tau 1..{D}", f"m, tau >= {D + 2}", f"r_abs, tau 1..{D}",
              f"r_abs, tau >= {D + 2}", "r_abs >= max / 10 up to tau"]
    return header, rows, curves


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True, help="the analysed LMs, in order")
    p.add_argument("--results", required=True, help="analyze.py's results.json of those LMs")
    p.add_argument("--property", default="sg-pl", help="the planted property")
    p.add_argument("--state", default="h", help="the state every cell has")
    p.add_argument("--out-dir", required=True)
    args = p.parse_args(argv)
    with open(args.results) as f:
        results = json.load(f)
    if [m["checkpoint"] for m in results["models"]] != \
            [os.path.splitext(os.path.basename(c))[0] for c in args.checkpoints]:
        sys.exit(f"{args.results} does not analyse these checkpoints, in this order")
    header, rows, curves = rows_of(results, args.checkpoints, args.property, args.state)
    os.makedirs(args.out_dir, exist_ok=True)
    outputs.write_table(os.path.join(args.out_dir, "cells"), header, rows)
    def draw(ax, _, column):                               # one curve per LM
        for name, (m, sigma1) in curves.items():
            ax.plot(m if column == "m" else sigma1, label=outputs.tex(name))
        ax.set_title(f"{column} (state {args.state})", fontsize=9)

    outputs.plot_panels(os.path.join(args.out_dir, "cells"), f"the planted {args.property} by cell",
                        [None], ["m", "sigma_1 of the class average"], draw, "")
    print("\n".join(open(os.path.join(args.out_dir, "cells.md")).read().splitlines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
