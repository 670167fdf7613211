"""Which weighting methods to compare on MultiMNIST: every method's accuracy on a validation split of the training pairs.

`bench/multimnist.py` compares single-task models with equal weights and the best three weighting methods. This
script picks those three without looking at the test split: it trains the two-task MultiLeNet with every method of
`WEIGHTINGS` (aliases once) on the first `--n-train` MultiMNIST training pairs, holds out the last `--n-valid` of them
as the validation set, and ranks the methods by their mean accuracy over both digits and `--seeds`. Same recipe as
`multimnist.py` (fastai's Adam, `fit_one_cycle`, learning rate 0.01, batch 256), shorter. Writes
bench/results/multimnist_screen.md and prints the three best methods.

    python bench/multimnist_screen.py [--n-train 20000] [--n-valid 5000] [--epochs 5] [--seeds 0 1]
"""
import argparse, time
import numpy as np, pandas as pd
from fastai_mtl.all import make_multimnist, WEIGHTINGS
from multimnist import train
from common import add_device_args, setup, machine, md_table, write

ALIASES = ('static', 'uw', 'dbmtl')   # static = equal here (both tasks weigh 1); uw = uncertainty; dbmtl = log

def validation_split(n_train, n_valid):
    "The first `n_train` MultiMNIST training pairs, the last `n_valid` of them marked `is_test` (the split `train` validates on)"
    df = make_multimnist(n_train=n_train, n_test=1, seed=0)
    df = df[~df.is_test].reset_index(drop=True)
    return df.assign(is_test=np.arange(len(df)) >= n_train - n_valid)

def main(args):
    device = setup(args)
    df = validation_split(args.n_train, args.n_valid)
    runs = []
    for seed in args.seeds:
        for m in [m for m in WEIGHTINGS if m not in ALIASES]:
            start = time.perf_counter()
            acc = train(df, ['left', 'right'], m, seed, args, device)
            runs.append(dict(method=m, seed=seed, seconds=time.perf_counter() - start, **acc))
            print(runs[-1], flush=True)
    runs = pd.DataFrame(runs).assign(mean=lambda d: (d.left + d.right)/2)
    table = runs.groupby('method').agg(left=('left', 'mean'), right=('right', 'mean'), mean=('mean', 'mean'),
                                        seconds=('seconds', 'median')).sort_values('mean', ascending=False).reset_index()
    table.insert(0, 'rank', range(1, len(table) + 1))
    return table

def report(table, args, device):
    best = [m for m in table.method if m != 'equal'][:3]
    shown = table.assign(**{c: table[c].map('{:.2f}'.format) for c in ('left', 'right', 'mean')}, seconds=table.seconds.map('{:.0f}'.format))
    shown.columns = ['rank', 'method', 'left (%)', 'right (%)', 'mean (%)', 'training s / run']
    return f"""# Quality: choosing the weighting methods for MultiMNIST

Every weighting method (aliases once), trained as in `multimnist.py` but shorter: the first {args.n_train:,} MultiMNIST
training pairs, of which the last {args.n_valid:,} are held out for validation; {args.epochs} epochs of `fit_one_cycle(lr={args.lr})`,
batch {args.bs}; validation accuracy after training, mean over seeds {', '.join(map(str, args.seeds))}. The test split is not used. The three
best methods by mean accuracy over both digits, **{', '.join(best)}**, are the ones `multimnist.py` compares.
{machine(device, args)}
Command: `python bench/multimnist_screen.py --n-train {args.n_train} --n-valid {args.n_valid} --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}`

{md_table(shown)}
"""

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--n-train', type=int, default=20000); p.add_argument('--n-valid', type=int, default=5000)
    p.add_argument('--epochs', type=int, default=5); p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--bs', type=int, default=256); p.add_argument('--p', type=float, default=0.5)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    args = p.parse_args()
    table = main(args)
    write('multimnist_screen', report(table, args, setup(args)), args)
