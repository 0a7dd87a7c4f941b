"""Does Table 2's separability of CBOW vectors grow with the text they are trained on? (No LM.)

    python experiments/cbow_text_size.py                         # Brown, 25/50/100 %, seed 0
    python experiments/cbow_text_size.py --fractions 0.5 1 --seeds 2 --out-dir /tmp/size

The paper's CBOW vectors come from 110M words of in-domain WSJ, ours (checkpoints/cbow.npz) from
the 0.97M words of Brown's training split. This trains word2vec CBOW (word2vec.py, train.py's
settings) on a fraction of that text, and scores Table 2 on the vectors as analyze.py does
(separability, both protocols, Wilson intervals). A fraction f is f x 100 of 100 equal chunks of
the training text, evenly spaced, so that each keeps every genre. Words seen fewer than --cbow-min-count
times in the fraction keep their random initial vectors, as in word2vec; the table says how many
of a row's words that is. Writes table2_size.md/.csv and results.json to --out-dir.
"""
import argparse
import json
import os
import sys
import types

import numpy as np
from scipy.stats import binomtest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import analyze  # noqa: E402
import corpus  # noqa: E402
import train  # noqa: E402
import word2vec  # noqa: E402
from tool import analysis, cli, files, outputs  # noqa: E402
from tool.corpora import load_corpus  # noqa: E402

CHUNKS = 100


def fraction_of_text(ids, fraction: float):
    """round(fraction x CHUNKS) of CHUNKS equal chunks of ``ids``, evenly spaced from the first to
    the last: (n,) word ids."""
    chunks = np.array_split(ids, CHUNKS)                               # CHUNKS x (about N / CHUNKS,)
    picked = np.unique(np.linspace(0, CHUNKS - 1, max(1, round(fraction * CHUNKS))).round())
    return np.concatenate([chunks[int(i)] for i in picked])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=cli.HelpFormatter)
    p.add_argument("--corpus", default="brown", help="a corpus train.py accepts")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                   help="parts of the training text (f x 100 of 100 chunks, evenly spaced)")
    p.add_argument("--seeds", type=cli.at_least(1), default=1, help="CBOW seeds per fraction")
    p.add_argument("--max-train-tokens", type=cli.at_least(1), default=None)
    p.add_argument("--cv-folds", type=cli.at_least(2), default=3)
    p.add_argument("--out-dir", default="figures/cbow-size")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if any(not 0 < f <= 1 for f in args.fractions):
        sys.exit("cbow_text_size.py: error: every --fractions value must be in (0, 1]")
    cbow = train.build_parser().parse_args([])                   # word2vec settings, train.py's
    data = load_corpus(args.corpus, cbow.vocab_size, args.max_train_tokens)
    scheme = analysis.load_scheme(types.SimpleNamespace(classes=None, property=[]), data)
    classes = corpus.word_classes(data, scheme)
    properties = list(scheme.properties)
    tasks = analysis.table2_tasks(scheme, properties)
    model = types.SimpleNamespace(name="cbow", classes=classes)
    datasets = {task: by_model["cbow"] for task, by_model in
                analysis.table2_datasets([model], tasks, args.cv_folds).items()}
    rows, report = [], []
    for fraction in args.fractions:
        ids = fraction_of_text(data.ids["train"], fraction)
        counts = np.bincount(ids, minlength=len(data.vocab))
        for seed in range(args.seeds):
            print(f"CBOW on {ids.size / data.ids['train'].size:.0%} of the training text "
                  f"({ids.size:,} words), seed {seed}", file=sys.stderr)
            W_in, _ = word2vec.train_cbow(
                ids, len(data.vocab), cbow.embedding_size, eos_id=data.word_to_id.get(corpus.EOS),
                window=cbow.cbow_window, negative=cbow.cbow_negative, sample=cbow.cbow_sample,
                min_count=cbow.cbow_min_count, epochs=cbow.cbow_epochs, lr=cbow.cbow_lr, seed=seed)
            for task, (words, labels) in datasets.items():
                score = analyze.separability(W_in[words], labels, folds=args.cv_folds)
                untrained = int((counts[words] < cbow.cbow_min_count).sum())
                cis = {p: list(binomtest(int(np.sum(score["correct"][p])), score["words"][1])
                               .proportion_ci(0.95, "wilson")) for p in ("paper", "honest")}
                report.append({"fraction": fraction, "words_read": int(ids.size), "seed": seed,
                               "row": task, "classes": int(len(set(labels))), "words": len(words),
                               "untrained_words": untrained, "paper": score["paper"],
                               "honest": score["honest"], "paper_ci": cis["paper"],
                               "honest_ci": cis["honest"]})
                rows.append([f"{task} ({report[-1]['classes']})",
                             f"{ids.size / data.ids['train'].size:.0%} ({ids.size:,} words)", str(seed),
                             f"{untrained} of {len(words)}",
                             *(f"{100 * score[p]:.2f} [{100 * cis[p][0]:.1f}, {100 * cis[p][1]:.1f}]"
                               for p in ("paper", "honest"))])
    os.makedirs(args.out_dir, exist_ok=True)
    out = os.path.join(args.out_dir, "table2_size")
    order = {f"{task} ({r['classes']})": i for i, (task, r) in enumerate(
        (r["row"], r) for r in report)}                                 # rows grouped by task
    outputs.write_table(out, ["classes", "text", "seed", "untrained words", "paper", "honest"],
                        sorted(rows, key=lambda r: order[r[0]]))
    files.atomic_write(os.path.join(args.out_dir, "results.json"),
                       lambda f: json.dump({"settings": vars(args), "rows": report}, f, indent=1), "w")
    print(f"wrote {out}.md/.csv and results.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
