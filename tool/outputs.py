"""What analyze.py writes to --out-dir, each file written whole (tool/files.py):

  figure1.png/.pdf   sigma_1 and sum of singular values of Gbar_tau against delay tau (paper Fig. 1)
  table1.md/.csv     sigma_1 at tau = 0 per part of speech, normalised in brackets (Table 1)
  table1_bands.md/.csv  Table 1 within frequency-rank bands of the vocabulary
  table2.md/.csv     accuracy of logistic regression predicting POS classes from embeddings (Table 2)
  figure2.png/.pdf   relative memory m and cos(d, H_n) for each property, e.g. sg-pl (Figure 2)
  response.png/.pdf  |Gbar_tau (mean_a - mean_b)| for each property: Figure 2 before normalising d
  frequency.png/.pdf sigma_1 against delay for words of a few frequency bins
  validation.png/.pdf validation perplexity per epoch of each LM's training
  results.json       every number behind them
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys

import numpy as np

import corpus
from tool.bootstrap import SEP
from tool.files import atomic_write



@dataclasses.dataclass
class Spectrum:
    """Figure 1 for one state: per delay, sigma_1, the sum of sigma and the sum of the top n."""
    sigma1: list
    sum: list
    top_n: list


@dataclasses.dataclass
class PropertyMemory:
    """Figure 2 for one property and state, per delay: r = |Gbar d| (eq. 5), m = r / sigma_1 (eq. 6),
    cos(d, H_n) (eq. 3-4), and r_abs = r |mean_a - mean_b|: how far the state moves when a word of
    class b is swapped for one of class a, tau steps back. None where no position was averaged."""
    r: list
    m: list
    cos_Hn: list
    r_abs: list


@dataclasses.dataclass
class ModelResults:
    """Every number analyze.py finds for one LM (results.json has one per LM)."""
    checkpoint: str
    embeddings: str
    hidden_size: int
    valid_ppl: float | None
    test_ppl: float | None
    whitened: bool
    spectrum: dict = dataclasses.field(default_factory=dict)     # state -> Spectrum (Figure 1)
    table1: dict = dataclasses.field(default_factory=dict)       # state -> class -> row
    table1_bands: dict = dataclasses.field(default_factory=dict)  # state -> class | band -> row
    figure2: dict = dataclasses.field(default_factory=dict)      # state -> property -> curves
    figure2_class: dict = dataclasses.field(default_factory=dict)  # the same, --average class
    frequency: dict = dataclasses.field(default_factory=dict)    # state -> bin -> sigma_1 per delay
    properties: dict = dataclasses.field(default_factory=dict)   # property -> words, |difference|
    property_cosines: dict = dataclasses.field(default_factory=dict)
    intervals: dict = dataclasses.field(default_factory=dict)    # path -> 95 % interval (bootstrap)
    cell: str = "lstm"                                           # lstm, gru or rnn (cells.py)


def write_table(stem, header, rows):
    """The same table as Markdown (stem.md, a "|" inside a cell escaped) and CSV (stem.csv)."""
    import csv

    def line(cells):
        return "| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |"

    markdown = [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]
    atomic_write(stem + ".md", lambda f: f.write("\n".join(markdown) + "\n"), "w")
    atomic_write(stem + ".csv", lambda f: csv.writer(f).writerows([header, *rows]), "w")


def tex(text):
    """A label matplotlib shows as typed: a checkpoint named $x$ is not mathtext."""
    return str(text).replace("$", r"\$")


def plot_panels(path, title, rows, columns, draw, ylabel, log=False, ylim=None,
                xlabel="delay $\\tau$"):
    """The one plotting helper: a grid of panels (rows x columns), draw(ax, row, column) fills
    each; saved as path.png and path.pdf."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(5.5 * len(columns), 4 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax_row, row in zip(axes, rows):
        for ax, column in zip(ax_row, columns):
            draw(ax, row, column)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_yscale("log" if log else "linear")
            if ylim:
                ax.set_ylim(*ylim)
            if ax.get_legend() is None and ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    for ext in ("png", "pdf"):
        atomic_write(f"{path}.{ext}", lambda f: fig.savefig(f, format=ext, dpi=150,
                                                            bbox_inches="tight"))
    plt.close(fig)


def delays(values):
    return np.arange(len(values))


def as_array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def band(ax, result, prefix, colour, length):
    """The 95 % interval of a curve (results.json's intervals under ``prefix``) as a shaded band."""
    cis = [result.intervals.get(SEP.join((*prefix, str(tau)))) for tau in range(length)]
    if any(cis):
        low, high = (as_array([ci[i] if ci else None for ci in cis]) for i in (0, 1))
        ax.fill_between(np.arange(length), low, high, color=colour, alpha=0.2, lw=0)


def plot_figure1(results, states, path):
    """sigma_1 (solid) and the sum of singular values (dashed, right axis) against delay, with their
    95 % intervals shaded; one panel per state, one colour per LM."""
    sizes_differ = len({result.hidden_size for result in results}) > 1

    def draw(ax, state, _):
        right = ax.twinx()
        for colour, result in zip(itertools.cycle(COLOURS), results):
            name = tex(result.checkpoint) + (f" (H={result.hidden_size})" if sizes_differ else "")
            spec = result.spectrum[state]
            ax.plot(delays(spec.sigma1), spec.sigma1, "-", color=colour, label=f"{name}: $\\sigma_1$")
            right.plot(delays(spec.sum), spec.sum, "--", color=colour, label=f"{name}: $\\sum\\sigma$")
            band(ax, result, ("spectrum", state, "sigma1"), colour, len(spec.sigma1))
            band(right, result, ("spectrum", state, "sum"), colour, len(spec.sum))
        right.set_ylabel("sum of singular values (dashed)")
        ax.set_title(f"SVD of the average gradient $d{state}_t/dx_{{t-\\tau}}$"
                     + (" (whitened)" if results[0].whitened else ""), fontsize=10)
        (left_handles, left_labels), (right_handles, right_labels) = (
            ax.get_legend_handles_labels(), right.get_legend_handles_labels())
        ax.legend(left_handles + right_handles, left_labels + right_labels, fontsize=7)

    plot_panels(path, "Figure 1: memory against delay", states, [None], draw,
                "largest singular value $\\sigma_1$ (solid)")


def property_curves(result, state, average):
    """Figure 2's curves of one LM and state: over all positions, or over each property's words."""
    return (result.figure2 if average == "all" else result.figure2_class)[state]


def plot_figure2(results, states, n, average, path):
    """Relative memory m (solid) and cos(d, H_n) (dotted) of each property against delay, their 95 %
    intervals shaded, with the spectrum's share of sigma_1 and of the top n in grey; rows: states,
    columns: LMs."""
    def draw(ax, state, result):
        if average == "all":          # the spectrum's shares belong to the all-positions Gbar
            spec = result.spectrum[state]
            total = np.array(spec.sum)
            ax.plot(delays(total), np.array(spec.sigma1) / total, color="0.6", lw=1,
                    label="$\\sigma_1/\\sum\\sigma$")
            ax.plot(delays(total), np.array(spec.top_n) / total, color="0.6", lw=1, ls="--",
                    label=f"$\\sum_{{i\\leq{n}}}\\sigma_i/\\sum\\sigma$")
        curves = property_curves(result, state, average)
        section = "figure2" if average == "all" else "figure2_class"
        for colour, (prop, memory) in zip(itertools.cycle(COLOURS), curves.items()):
            ax.plot(delays(memory.m), as_array(memory.m), "-", color=colour, label=f"m, {tex(prop)}")
            ax.plot(delays(memory.m), as_array(memory.cos_Hn), ":", color=colour,
                    label=f"cos(d, $H_{n}$), {tex(prop)}")
            for measure in ("m", "cos_Hn"):
                band(ax, result, (section, state, prop, measure), colour, len(memory.m))
        cosines = ", ".join(f"cos({tex(pair)}) = {cosine:.2f}"
                            for pair, cosine in result.property_cosines.items())
        ax.set_title(f"{tex(result.checkpoint)}, state {state}" + (f"\n{cosines}" if cosines else ""),
                     fontsize=9)

    over = "all positions" if average == "all" else "the positions of each property's words"
    plot_panels(path, f"Figure 2: relative memory m and cos(d, $H_n$), $\\bar G_\\tau$ over {over}",
                states, results, draw, "m, cos", ylim=(0, 1.02))


def plot_response(results, states, average, path):
    """r_abs = |Gbar_tau (mean_a - mean_b)| of each property against delay (log scale)."""
    def draw(ax, state, result):
        for prop, memory in property_curves(result, state, average).items():
            norm = result.properties[prop]["difference_norm"]
            ax.plot(delays(memory.r_abs), as_array(memory.r_abs),
                    label=f"{tex(prop)} ($|\\mu_a - \\mu_b|$ = {norm:.2f})")
        ax.set_title(f"{tex(result.checkpoint)}, state {state}", fontsize=9)

    plot_panels(path, "Response of the state to each property (eq. 5 before eq. 2's normalisation)",
                states, results, draw, "$|\\bar G_\\tau (\\mu_a - \\mu_b)|$", log=True)


def plot_frequency(results, states, path):
    """sigma_1 of the average gradient over the words of each frequency bin, against delay."""
    def draw(ax, state, result):
        for name, values in result.frequency[state].items():
            ax.plot(delays(values["sigma1"]), as_array(values["sigma1"]),
                    label=f"{name} ({values['count']} tokens)")
        ax.set_title(f"{tex(result.checkpoint)}, state {state}", fontsize=9)

    plot_panels(path, "$\\sigma_1$ of $\\bar G_\\tau$ per word-frequency bin (rank in the vocabulary)",
                states, results, draw, "$\\sigma_1$", log=True)


def plot_validation(models, path):
    """Validation perplexity after every epoch of each LM's training (its checkpoint's history)."""
    def draw(ax, *_):
        for colour, model in zip(itertools.cycle(COLOURS), models):
            history = model.meta.get("train", {}).get("history", [])
            ax.plot([h["epoch"] for h in history], [h["valid_ppl"] for h in history], "o-",
                    color=colour, markersize=3, label=tex(model.name))

    plot_panels(path, "Validation perplexity per epoch", [None], [None], draw, "perplexity",
                log=True, xlabel="epoch")


def json_safe(value):
    """NaN and infinities as null: results.json stays JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_tables(results, rows_of_table2, scheme, states, out):
    """table1 (with <unk> after the classes), table1_bands and table2 as Markdown and CSV."""
    columns = [(result, state) for result in results for state in states]
    header = [result.checkpoint + (f" ({state})" if len(states) > 1 else "")
              for result, state in columns]

    def cell(result, section, state, name):               # sigma_1 [95 % interval] (share) or n
        row = getattr(result, section)[state].get(name)
        if row is None or row["sigma1"] is None:
            return "-"
        ci = result.intervals.get(SEP.join((section, state, name, "sigma1")))
        text = f"{row['sigma1']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        if section == "table1_bands":
            return f"{text} n={row['count']}"
        return text + (f" ({row['normalised']:.2f})" if row["normalised"] is not None else "")

    write_table(out("table1"), ["class", *header],
                [[name, *(cell(result, "table1", state, name) for result, state in columns)]
                 for name in [*scheme.pos, corpus.UNK]])
    bands = list(dict.fromkeys(b for result in results for b in result.table1_bands[states[0]]))
    write_table(out("table1_bands"), ["class | band", *header],
                [[band, *(cell(result, "table1_bands", state, band) for result, state in columns)]
                 for band in bands])
    if rows_of_table2:
        names = [result.checkpoint for result in results]
        protocols = ("paper", "honest")
        write_table(out("table2"), ["classes", *(f"{n} ({p})" for n in names for p in protocols)],
                    [[f"{task} ({next(iter(row.values()))['classes']})",
                      *(percent(row[n], p) for n in names for p in protocols)]
                     for task, row in rows_of_table2.items()])


def percent(cell, protocol):
    """Table 2's accuracy in %, with its 95 % (Wilson) interval when there is one."""
    ci = cell.get(f"{protocol}_ci")
    return f"{100 * cell[protocol]:.2f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def remove_stale_table2(out_dir):
    """Remove the Table 2 an earlier run left in ``out_dir`` when this run writes none."""
    for name in ("table2.md", "table2.csv"):
        path = os.path.join(out_dir, name)
        if os.path.isfile(path):
            os.remove(path)
            print(f"note: removed {path} of an earlier run (this run has no Table 2)",
                  file=sys.stderr)


def write_outputs(models, results, rows_of_table2, scheme, states, args, report, figures=True):
    """The figures (unless ``figures`` is False), the tables and results.json (with ``report``:
    the timing and the bootstrap's differences) into --out-dir."""
    out = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    if figures:
        plot_validation(models, out("validation"))
        plot_figure1(results, states, out("figure1"))
        plot_figure2(results, states, args.top_n, args.average, out("figure2"))
        plot_response(results, states, args.average, out("response"))
        plot_frequency(results, states, out("frequency"))
    write_tables(results, rows_of_table2, scheme, states, out)
    report = {"settings": vars(args), "classes": scheme.source,
              "models": [dataclasses.asdict(result) for result in results], "table2": rows_of_table2,
              **report}
    atomic_write(out("results.json"),
                               lambda f: json.dump(json_safe(report), f, indent=1, allow_nan=False),
                               "w")
