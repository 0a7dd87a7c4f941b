"""Every claim of the paper next to our numbers, with a verdict the 95 % intervals support.

    python experiments/verdicts.py --runs figures figures/seed1 --out docs/verdicts.md

Each --runs folder is one seed's analysis (analyze.py --state both, with Table 2) with its
whitened analysis in <folder>/whitened; the numbers and intervals are those of results.json
(tool/bootstrap.py). A claim of an order or of "better" is a difference of two numbers: on a
seed it holds ("yes") when the 95 % interval of the difference excludes zero on the paper's
side, fails ("no") when it excludes zero on the other side, and is "n.s." (not separable at this
size) otherwise. Over the seeds: reproduced when every seed says yes, not reproduced when every
seed says no, seeds disagree when one says yes and another no, else not separable at this size;
a seed without the number (an analysis not run) is left out, and the verdict names the seeds it
rests on ("reproduced (seed 0 only)"; seeds numbered in the order of --runs).
A claim over a range of delays gets that verdict per delay, written as ranges of tau. A claim of
a value (the paper's number) holds where our interval meets the paper's value or range.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tool.bootstrap import SEP, leaves  # noqa: E402

CBOW_CAUSE = "†"
CBOW_NOTE = ("† the cbow condition differs: the paper's CBOW vectors were trained on 110M words of "
             "in-domain WSJ, ours on the 0.97M words of Brown's training text; the leading cause "
             "to test for any cbow row that does not reproduce (see experiments/cbow_text_size.py "
             "for the part that needs no LM).")


class Run:
    """One seed's results: main and whitened results.json."""

    def __init__(self, folder):
        self.folder = folder
        with open(os.path.join(folder, "results.json"), encoding="utf-8") as f:
            self.main = json.load(f)
        whitened = os.path.join(folder, "whitened", "results.json")
        self.whitened = None
        if os.path.exists(whitened):
            with open(whitened, encoding="utf-8") as f:
                self.whitened = json.load(f)

    def report(self, space):
        return self.whitened if space == "whitened" else self.main

    def model(self, name, space="main"):
        return next(m for m in self.report(space)["models"] if m["checkpoint"] == name)

    def value(self, name, path, space="main"):
        """(value, low, high) of one number of one LM."""
        model = self.model(name, space)
        ci = model["intervals"].get(path) or [None, None]
        value = leaves(model).get(path)
        return (None if value is None or value != value else value, *ci)        # NaN: None

    def difference(self, key, path, space="main"):
        """(value, low, high) of a difference of results.json's "differences"; None if absent
        (or undefined: null)."""
        report = self.report(space)
        found = None if report is None else report.get("differences", {}).get(key, {}).get(path)
        return None if found is None or found[0] is None else tuple(found)


def path(*parts):
    return SEP.join(map(str, parts))


def side(stat, expect, threshold=0.0):
    """'yes', 'no' or 'n.s.' for one (value, low, high) and the paper's side of ``threshold``
    (expect +1: above it)."""
    if stat is None or stat[0] is None:
        return "none"
    if stat[1] is None:
        return "n.s."
    value, low, high = stat
    if (low > threshold if expect > 0 else high < threshold):
        return "yes"
    if (high < threshold if expect > 0 else low > threshold):
        return "no"
    return "n.s."


def combine(sides):
    """The verdict over the seeds that have the number (module docstring): a seed without it (an
    analysis not run, or a class without positions) is left out and named, "not measured" where
    no seed has it."""
    measured = [s for s in sides if s != "none"]
    if not measured:
        return "not measured"
    if len(measured) < len(sides):
        seeds = ", ".join(str(i) for i, s in enumerate(sides) if s != "none")
        return f"{combine(measured)} (seed {seeds} only)"
    if all(s == "yes" for s in sides):
        return "reproduced"
    if all(s == "no" for s in sides):
        return "not reproduced"
    if "yes" in sides and "no" in sides:
        return "seeds disagree"
    return "not separable at this size"


def ranges(verdict_of_tau):
    """{tau: verdict} as 'reproduced at tau 1-8; not separable at this size at 9-10; ...'; a
    "(seed 0 only)" that every delay shares is said once, at the end."""
    suffixes = {v[v.rfind(" ("):] if v.endswith(" only)") else "" for v in verdict_of_tau.values()}
    if len(suffixes) == 1 and (suffix := suffixes.pop()):
        trimmed = {tau: v[:-len(suffix)] for tau, v in verdict_of_tau.items()}
        return ranges(trimmed) + suffix
    out, taus = [], sorted(verdict_of_tau)
    start = taus[0]
    for i, tau in enumerate(taus):
        last = i == len(taus) - 1 or verdict_of_tau[taus[i + 1]] != verdict_of_tau[tau]
        if last:
            span = f"{start}" if start == tau else f"{start}–{tau}"
            out.append(f"{verdict_of_tau[tau]} at τ {span}")
            if i < len(taus) - 1:
                start = taus[i + 1]
    return "; ".join(out)


def fmt(stat, digits=2):
    if stat is None or stat[0] is None:
        return "–"
    def number(x):
        text = f"{x:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text   # no "-0.00"

    value, low, high = stat
    return number(value) + (f" [{number(low)}, {number(high)}]" if low is not None else "")


def single(runs, get, expect, digits=2, threshold=0.0):
    """A claim on one number: (ours per seed, verdict)."""
    stats = [get(run) for run in runs]
    return (" / ".join(fmt(s, digits) for s in stats),
            combine([side(s, expect, threshold) for s in stats]))


def all_of(runs, gets, expect, digits=2):
    """A claim that needs several differences at once (every one on the paper's side): the
    closest one shown per seed; per seed yes if all are yes, no if any is no."""
    shown, sides = [], []
    for run in runs:
        found = [(getattr(get, "label", ""), get(run)) for get in gets]
        labels = [label for label, stat in found if stat is not None]
        stats = [stat for _, stat in found if stat is not None]
        if len(stats) < len(found):                    # a difference the claim needs is missing
            shown.append("–" if not stats else f"{len(found) - len(stats)} missing")
            sides.append("none" if not stats else "n.s.")
            continue
        per = [side(s, expect) for s in stats]
        sides.append("no" if "no" in per else "yes" if all(p == "yes" for p in per) else "n.s.")
        closest = min(stats, key=lambda s: expect * s[0])
        label = labels[[id(x) for x in stats].index(id(closest))]
        shown.append(f"{label}: {fmt(closest, digits)}" if label else fmt(closest, digits))
    return " / ".join(shown), combine(sides)


def over_delays(runs, get, expect, taus, digits=2):
    """A claim at every delay of ``taus``: per-delay verdicts as ranges; ours at the first and
    last delay."""
    if not taus:
        return "–", "not measured (--max-delay too small)"
    verdicts = {tau: combine([side(get(run, tau), expect) for run in runs]) for tau in taus}
    shown = " / ".join(f"τ {taus[0]}: {fmt(get(run, taus[0]), digits)}, τ {taus[-1]}: "
                       f"{fmt(get(run, taus[-1]), digits)}" for run in runs)
    return shown, ranges(verdicts)


def value_claim(runs, get, low, high, taus, digits=2):
    """The paper's value (or range) [low, high] against our intervals at the delays ``taus``:
    "inside our interval" where they meet, "outside" where they do not; ours: the range of our
    values over those delays, per seed."""
    if not taus:
        return "–", "not measured (--max-delay too small)"

    def holds(stat):
        if stat is None or stat[0] is None:
            return "none"
        if stat[1] is None:
            return "n.s."
        value, lo, hi = stat
        return "yes" if lo <= high and hi >= low else "no"

    def span(run):
        values = [get(run, t)[0] for t in taus if get(run, t)[0] is not None]
        return f"{min(values):.{digits}f}–{max(values):.{digits}f}" if values else "–"

    verdicts = {tau: combine([holds(get(run, tau)) for run in runs]) for tau in taus}
    text = ranges(verdicts).replace("not reproduced", "outside our interval").replace(
        "reproduced", "inside our interval")
    return " / ".join(span(run) for run in runs), text


def claims(runs, K):
    """[(where, the paper's claim, the paper's number, ours per seed, verdict, note)]."""
    POS = ["pronouns", "nouns", "verbs", "adjectives", "adverbs", "conj./prep."]
    rows = []

    def t1(lm, a, b):                               # sigma_1(a) - sigma_1(b), Table 1, one LM
        return band_diff(lm, a, b, None)

    ppl = [(run.model("cbow")["valid_ppl"] - run.model("joint")["valid_ppl"], None, None)
           for run in runs]
    rows.append(("perplexity", "the frozen-CBOW LM is the worse LM", "87.0 vs 81.5 (valid)",
                 " / ".join(f"{run.model('cbow')['valid_ppl']:.2f} vs {run.model('joint')['valid_ppl']:.2f}"
                            for run in runs),
                 combine(["yes" if p[0] > 0 else "no" for p in ppl]) + " (no interval: one LM per seed)",
                 CBOW_CAUSE))
    rows.append(("Fig. 1", "σ₁ falls sharply over the first delays (joint): σ₁(0) / σ₁(5)",
                 "sharp fall, 'forgotten after about 5 words'",
                 *single(runs, lambda r: r.value("joint", path("spectrum", "c", "fall", 5)), +1,
                         threshold=1.0), "a fall: the ratio's interval above 1"))
    for lm in ("joint", "cbow"):
        rows.append(("Fig. 1", f"memory grows more selective with the delay ({lm}): σ₁/Σσ at τ minus at 0",
                     "yes (σ₁/Σσ becomes larger)",
                     *over_delays(runs, lambda r, t, lm=lm: r.difference(lm, path("spectrum", "c", "share1", f"{t} - 0")),
                                  +1, list(range(1, K + 1))), ""))
    for space in ("main", "whitened"):
        label = "" if space == "main" else ", whitened"
        rows.append(("Fig. 1", f"the cbow LM is much more selective at long delays{label}: σ₁/Σσ, cbow minus joint",
                     "0.50 vs 0.16 at τ = 29",
                     *over_delays(runs, lambda r, t, s=space: r.difference("cbow - joint", path("spectrum", "c", "share1", t), s),
                                  +1, list(range(0, K + 1))), CBOW_CAUSE))
        rows.append(("Fig. 1", f"the cbow LM has smaller singular values{label}: Σσ, cbow minus joint",
                     "smaller",
                     *over_delays(runs, lambda r, t, s=space: r.difference("cbow - joint", path("spectrum", "c", "sum", t), s),
                                  -1, list(range(0, K + 1))), CBOW_CAUSE))
        rows.append(("Fig. 1", f"the cbow LM's σ₁ falls less sharply{label}: σ₁(0)/σ₁(τ), cbow minus joint",
                     "less sharp",
                     *over_delays(runs, lambda r, t, s=space: r.difference("cbow - joint", path("spectrum", "c", "fall", t), s),
                                  -1, list(range(1, K + 1))), CBOW_CAUSE))
    for low, high, first, last in ((0.55, 0.65, 10, 20), (0.75, 0.85, 21, 30)):
        taus = [t for t in range(first, last + 1) if t <= K]
        rows.append(("Fig. 2", f"the top-5 share of Σσ is about {100 * (low + high) / 2:.0f} % at τ "
                     f"{first}–{last} (cbow)", f"{(low + high) / 2:.1f}",
                     *value_claim(runs, lambda r, t: r.value("cbow", path("spectrum", "c", "share_n", t)),
                                  low, high, taus),
                     CBOW_CAUSE + f"; 'about' read as {low:.2f}–{high:.2f}"))
    rows.append(("Table 1", "pronouns have the largest σ₁ (joint)", "1.95, next 1.66 (nouns)",
                 *all_of(runs, [t1("joint", "pronouns", b) for b in POS[1:]], +1), "shown: the pair least in the claim's favour (all must hold)"))
    rows.append(("Table 1", "followed by nouns (joint)", "1.66, next 1.65 (verbs)",
                 *all_of(runs, [t1("joint", "nouns", b) for b in POS[2:]], +1), "shown: the pair least in the claim's favour (all must hold)"))
    rows.append(("Table 1", "adjectives, adverbs, conj./prep. below pronouns, nouns, verbs (joint)", "yes",
                 *all_of(runs, [t1("joint", a, b) for a in POS[:3] for b in POS[3:]], +1),
                 "shown: the pair least in the claim's favour (all must hold)"))
    rows.append(("Table 1", "pronouns have the largest σ₁ (cbow)", "0.96, next 0.59 (adverbs)",
                 *all_of(runs, [t1("cbow", "pronouns", b) for b in POS[1:]], +1), CBOW_CAUSE))
    rows.append(("Table 1", "adverbs, adjectives, conj./prep. above nouns and verbs (cbow)", "yes",
                 *all_of(runs, [t1("cbow", a, b) for a in ("adverbs", "adjectives", "conj./prep.")
                                for b in ("nouns", "verbs")], +1), CBOW_CAUSE))
    rows.append(("Table 1", "the shares spread more for the cbow LM: max - min share, cbow minus joint",
                 "0.15 vs 0.05",
                 *single(runs, lambda r: r.difference("cbow - joint", path("table1", "c", "spread", "normalised")), +1),
                 CBOW_CAUSE))
    for lm in ("joint", "cbow"):
        bands = bands_of(runs[0], lm, POS)
        if len(bands) < 2:
            continue
        first, last = bands[0], bands[-1]
        rows.append(("Table 1 (ours)", f"σ₁ grows with rarity in every class ({lm}): band {last} minus {first}",
                     "(not in the paper)",
                     *all_of(runs, [labelled(lambda r, c=c: r.difference(lm, path("table1_bands", "c", f"{c} | {last} - {first}", "sigma1")), c)
                                    for c in POS], +1), "shown: the class least in the claim's favour (all must hold)"))
    for lm in ("joint", "cbow"):
        for band in bands_of(runs[0], lm, POS[:1]):
            gets = [band_diff(lm, "pronouns", b, band) for b in POS[1:]]
            present = [g for g in gets if g(runs[0]) is not None]
            if present:
                rows.append(("Table 1 (ours)", f"pronouns first inside the band {band} ({lm})", "(not in the paper)",
                             *all_of(runs, present, +1), "shown: the pair least in the claim's favour (all must hold)"))
    for task in runs[0].main.get("table2", {}):
        cbow, lm = PAPER_TABLE2.get(task, (0.0, 1.0))
        better, expect = ("the LM's embeddings", +1) if lm > cbow else ("cbow's", -1)
        rows.append(("Table 2", f"{better} separate {task} better (honest protocol; LM minus cbow, % points)",
                     paper_table2(task),
                     *single(runs, lambda r, t=task: scale(r.main["table2"][t]["cbow"].get("honest_minus_joint"), -100),
                             expect, 1), CBOW_CAUSE))
    for task in ("sg-pl", "common-proper"):
        if task in runs[0].main.get("table2", {}):
            rows.append(("Table 2", f"{task} is linearly separable: honest accuracy minus the majority class's share (% points, both LMs)",
                         "84–87 % (no baseline given)",
                         *all_of(runs, [labelled(lambda r, t=task, lm=lm: majority_margin(r, t, lm), lm) for lm in ("joint", "cbow")], +1, 1),
                         "shown: the LM with the smaller margin"))
    for lm, space in (("joint", "main"), ("joint", "whitened"), ("cbow", "main"), ("cbow", "whitened")):
        label, note = (lm if space == "main" else f"{lm}, whitened"), ("" if lm == "joint" else CBOW_CAUSE)
        def prop_diff(r, t, ms="m", lm=lm, sp=space):             # sg-pl minus common-proper
            forward = r.difference(lm, path("figure2", "c", "sg-pl - common-proper", ms, t), sp)
            return forward if forward is not None else negate(
                r.difference(lm, path("figure2", "c", "common-proper - sg-pl", ms, t), sp))
        if lm == "joint":
            rows.append(("Fig. 2", f"sg-pl slightly better remembered than common-proper at τ = 0 ({label}): m, sg-pl minus common-proper",
                         "yes", *single(runs, lambda r: prop_diff(r, 0), +1), note))
        for measure in ("m", "cos_Hn"):
            taus = list(range(1 if lm == "joint" else 0, K + 1))
            rows.append(("Fig. 2", f"common-proper better remembered {'at τ ≥ 1' if lm == 'joint' else 'in general'} ({label}): {measure}, common-proper minus sg-pl",
                         "yes", *over_delays(runs, lambda r, t, ms=measure: negate(prop_diff(r, t, ms)), +1, taus),
                         note))
        if space == "main":
            rows.append(("Fig. 2", f"the properties matter mostly on the short term ({lm}): m(2) minus m(0), sg-pl",
                         "a sharp fall of m at τ = 2",
                         *single(runs, lambda r, lm=lm: r.difference(lm, path("figure2", "c", "sg-pl", "m", "2 - 0")), -1),
                         note))
    rows.append(("Fig. 2", "the difference between the properties is much smaller for the cbow LM: |m diff| joint minus cbow",
                 "yes, even more so at long delays",
                 *over_delays(runs, lambda r, t: smaller_gap(r, t), +1, list(range(0, K + 1))),
                 CBOW_CAUSE + "; conservative: the intervals of the two absolute differences compared"))
    rows.append(("Fig. 2", "cbow: m about 0.2 after τ = 10 (sg-pl)", "0.2",
                 *value_claim(runs, lambda r, t: r.value("cbow", path("figure2", "c", "sg-pl", "m", t)), 0.15, 0.25,
                              list(range(11, K + 1))), CBOW_CAUSE + "; 'about 0.2' read as 0.15–0.25"))
    rows.append(("Fig. 2", "cbow: cos(d, H5) about 0.4 after τ = 10 (sg-pl)", "0.4",
                 *value_claim(runs, lambda r, t: r.value("cbow", path("figure2", "c", "sg-pl", "cos_Hn", t)), 0.3, 0.5,
                              list(range(11, K + 1))), CBOW_CAUSE + "; 'about 0.4' read as 0.3–0.5"))
    for lm, paper in (("joint", -0.59), ("cbow", -0.57)):
        cosines = [r.model(lm)["property_cosines"].get("sg-pl / common-proper") for r in runs]
        rows.append(("Fig. 2", f"cos(d_sg-pl, d_common-proper) is clearly negative ({lm})", f"{paper}",
                     " / ".join(f"{c:.2f}" for c in cosines),
                     combine(["yes" if c < 0 else "no" for c in cosines]) + " (sign; no interval: no text involved)",
                     "" if lm == "joint" else CBOW_CAUSE))
    return rows


PAPER_TABLE2 = {"all": (35.99, 42.39), "nouns": (71.23, 73.54), "N-V-Adj-Adv-Pro": (57.34, 66.33),
                "N-V": (73.60, 77.28), "N-Adj": (79.06, 84.47), "V-Adv": (91.48, 95.00),
                "sg-pl": (84.31, 87.08), "common-proper": (84.46, 83.69)}


def paper_table2(task):
    cbow, lm = PAPER_TABLE2.get(task, (None, None))
    return "–" if cbow is None else f"{lm:.2f} vs {cbow:.2f}" + (" (LM better)" if lm > cbow else " (cbow better)")


def scale(stat, by):
    """(value, low, high) times ``by`` (the interval's ends swapped when by < 0)."""
    if stat is None:
        return None
    value, low, high = stat if by > 0 else (stat[0], stat[2], stat[1])
    return tuple(None if x is None else x * by for x in (value, low, high))


def negate(stat):
    return scale(stat, -1)


def majority_margin(run, task, lm):
    """An LM's honest accuracy minus the majority class's share, with the Wilson interval
    shifted by it (% points)."""
    cell = run.main["table2"][task][lm]
    return tuple(100 * (x - cell["majority"]) for x in (cell["honest"], *cell["honest_ci"]))


def smaller_gap(run, tau):
    """|sg-pl - common-proper| of m for joint minus that for cbow, with the conservative interval
    [joint's lowest |.| - cbow's highest, joint's highest - cbow's lowest]."""
    def absolute(stat):
        value, low, high = stat
        if low is None:
            return abs(value), None, None
        inner = 0.0 if low <= 0 <= high else min(abs(low), abs(high))
        return abs(value), inner, max(abs(low), abs(high))
    stats = [run.difference(lm, path("figure2", "c", "sg-pl - common-proper", "m", tau))
             for lm in ("joint", "cbow")]
    if None in stats:                                          # undefined at this delay
        return None
    (joint, joint_low, joint_high), (cbow, cbow_low, cbow_high) = map(absolute, stats)
    if joint_low is None or cbow_low is None:
        return joint - cbow, None, None
    return joint - cbow, joint_low - cbow_high, joint_high - cbow_low


def bands_of(run, lm, classes):
    """The frequency bands of table1_bands in which every one of ``classes`` has a sigma_1."""
    cells = run.model(lm)["table1_bands"]["c"]
    bands = dict.fromkeys(k.split(" | ", 1)[1] for k in cells)
    return [b for b in bands if all((cells.get(f"{c} | {b}") or {}).get("sigma1") is not None
                                    for c in classes)]


def band_diff(lm, a, b, band):
    """sigma_1(a) - sigma_1(b) of one LM inside a frequency band (None: in Table 1), whichever
    way round results.json holds it."""
    def get(run):
        diffs = run.main["differences"][lm]
        section, suffix = ("table1", "") if band is None else ("table1_bands", f" | {band}")
        forward = path(section, "c", f"{a} - {b}{suffix}", "sigma1")
        backward = path(section, "c", f"{b} - {a}{suffix}", "sigma1")
        if forward in diffs:
            return tuple(diffs[forward])
        if backward in diffs:
            return negate(tuple(diffs[backward]))
        return None
    get.label = f"{a} − {b}"
    return get


def labelled(get, label):
    get.label = label
    return get


def write(rows, runs, out):
    folders = " / ".join(r.folder for r in runs)
    lines = [
        "# The paper's claims, re-judged",
        "",
        f"Written by `python experiments/verdicts.py --runs {' '.join(r.folder for r in runs)}` "
        f"from each analysis's results.json, one folder per seed ({folders}). Ours: per seed, "
        "separated by ' / ', 95 % bootstrap intervals in brackets; state c. A claim of an order or "
        "of 'better' is a difference: reproduced when its interval excludes zero on the paper's "
        "side in every seed, not reproduced when it excludes zero on the other side in every seed, "
        "seeds disagree when they split, not separable at this size otherwise; over a range of "
        "delays, that verdict per delay, as ranges of τ. A claim of a value holds where our "
        "interval meets it (a range the note gives for the paper's 'about'). Seeds are numbered "
        "in the order of the folders; a seed without a number (an analysis not run) is left out "
        "of the verdict, which then names the seeds it rests on ('seed 0 only').",
        "",
        "| where | the paper's claim | paper | ours | verdict | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")
    lines += ["", CBOW_NOTE]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out}: {len(rows)} claims", file=sys.stderr)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", default=["figures"], help="one analysis folder per seed")
    p.add_argument("--out", default="docs/verdicts.md")
    args = p.parse_args(argv)
    runs = []
    for folder in args.runs:
        if not os.path.isfile(os.path.join(folder, "results.json")):
            sys.exit(f"verdicts.py: error: {folder} holds no results.json (run analyze.py first)")
        runs.append(Run(folder))
    if any("differences" not in r.main or not r.main["differences"] for r in runs):
        sys.exit("verdicts.py: error: the analyses have no intervals (run analyze.py with --bootstrap)")
    K = len(runs[0].model("joint")["spectrum"]["c"]["sigma1"]) - 1
    write(claims(runs, K), runs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
