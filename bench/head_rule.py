"""Which rule trains the heads better under gradient weightings: heads scaled by the aggregator's weight, or each head's own loss gradient.

`GradientWeighting(heads='weighted')` back-propagates the weighted sum of the losses, so a head's gradient is scaled by its
task's aggregator weight (Sener & Koltun's MGDA code); `heads='unweighted'` gives each head its own loss's gradient and
the shared layers the aggregator's combination (TorchJD's `mtl_backward`). Both rules, for MGDA, UPGrad and Nash-MTL at
the representation level, on a reduced MultiMNIST (MultiLeNet) and the generated shapes (a small CNN), same seeds, same
data. Writes bench/results/head_rule.md.

    python bench/head_rule.py [--n-train 6000] [--epochs 3] [--seeds 0 1 2] [--methods mgda upgrad nash_mtl]
"""
import argparse, time, tempfile
from pathlib import Path
import numpy as np, pandas as pd, torch
from torch import nn
from fastai.vision.all import ConvLayer, set_seed
from fastai_mtl.all import (Tasks, CategoryTask, RegressionTask, MultiCategoryTask, MTLLearner, MultiHead, GradientWeighting,
                            get_weighting, make_multimnist, multimnist_dataloaders, lenet_body, lenet_head, make_shapes,
                            shapes_dataloaders, create_mtl_model)
from common import add_device_args, setup, machine, md_table, write, suffix, RESULTS

RULES = ('weighted', 'unweighted')

def weighting(method, heads, n_tasks):
    "The named gradient weighting (its aggregator, level and normalisation as `get_weighting` makes it) with head rule `heads`"
    w = get_weighting(method, n_tasks)
    return GradientWeighting(w.aggregator, w.level, w.normalize, heads=heads)

def multimnist(df, method, heads, seed, args, device):
    "Test accuracy of left and right after training MultiLeNet"
    tasks = Tasks(CategoryTask('left'), CategoryTask('right'))
    set_seed(seed, reproducible=True)
    dls = multimnist_dataloaders(df, tasks, bs=args.bs, device=device)
    tasks.setup(dls)
    model = nn.Sequential(lenet_body(0.5), MultiHead({t.name: lenet_head(t.n_out, 0.5) for t in tasks}))
    learn = MTLLearner(dls, model, tasks, weighting=weighting(method, heads, 2))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(args.epochs, 1e-2)
    final = learn.history.df.iloc[-1]
    return dict(left=100*final['left_accuracy'], right=100*final['right_accuracy'])

def _body(): return nn.Sequential(ConvLayer(3, 16, stride=2), ConvLayer(16, 32, stride=2), ConvLayer(32, 64, stride=2), ConvLayer(64, 64))

def shapes(data, method, heads, seed, args, device):
    "Validation accuracies (shape, colour, marks) and size MAE after training a small CNN on the generated shapes"
    path, df = data
    tasks = Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks'))
    dls = shapes_dataloaders(path, df, tasks, bs=32, num_workers=0, device=device)
    set_seed(seed, reproducible=True)
    tasks.setup(dls)
    learn = MTLLearner(dls, create_mtl_model(_body(), tasks, lin_ftrs=[32]), tasks, weighting=weighting(method, heads, 4))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(args.shapes_epochs, 1e-2)
    f = learn.history.df.iloc[-1]
    return dict(shape=100*f['shape_accuracy'], color=100*f['color_accuracy'], marks=100*f['marks_accuracy_multi'], size_mae=f['size_mae'])

def main(args):
    device = setup(args)
    mm = make_multimnist(n_train=args.n_train, n_test=args.n_test, seed=0)
    path = Path(tempfile.gettempdir())/'fastai_mtl_head_rule_shapes'
    sh = (path, make_shapes(path, n=args.n_shapes, img_size=32, seed=5))
    runs = []
    for seed in args.seeds:
        for method in args.methods:
            for heads in RULES:
                for name, f, data in (('multimnist', multimnist, mm), ('shapes', shapes, sh)):
                    start = time.perf_counter()
                    res = f(data, method, heads, seed, args, device)
                    runs.append(dict(data=name, method=method, heads=heads, seed=seed, seconds=time.perf_counter() - start, **res))
                    print(runs[-1], flush=True)
    return pd.DataFrame(runs)

def _ms(s): return f'{s.mean():.2f} ± {s.std(ddof=0):.2f}'

def summary(runs):
    "One row per method and rule: mean ± std over seeds of each metric, and the mean of the per-seed accuracy averages"
    rows = []
    for (method, heads), g in runs.groupby(['method', 'heads'], sort=False):
        mm,sh = g[g.data == 'multimnist'],g[g.data == 'shapes']
        rows.append({'method': method, 'heads': heads, 'MultiMNIST left (%)': _ms(mm['left']), 'right (%)': _ms(mm['right']),
                     'shapes: shape (%)': _ms(sh['shape']), 'color (%)': _ms(sh['color']), 'marks (%)': _ms(sh['marks']),
                     'size MAE (px)': _ms(sh['size_mae']),
                     'mean accuracy (%)': f"{np.mean([mm[['left', 'right']].values.mean(), sh[['shape', 'color', 'marks']].values.mean()]):.2f}"})
    return pd.DataFrame(rows)

def wins(runs):
    "For each method: on how many (dataset, seed) pairs each rule has the higher mean accuracy"
    acc = runs.assign(acc=np.where(runs.data == 'multimnist', runs[['left', 'right']].mean(1), runs[['shape', 'color', 'marks']].mean(1)))
    piv = acc.pivot_table(index=['method', 'data', 'seed'], columns='heads', values='acc')
    return {m: (int((g.weighted > g.unweighted).sum()), int((g.unweighted > g.weighted).sum()), len(g)) for m,g in piv.groupby(level=0)}

def report(runs, args, device):
    cmd = (f"python bench/head_rule.py --n-train {args.n_train} --n-test {args.n_test} --epochs {args.epochs} --n-shapes {args.n_shapes} "
           f"--shapes-epochs {args.shapes_epochs} --seeds {' '.join(map(str, args.seeds))} --methods {' '.join(args.methods)}")
    w = wins(runs)
    return f"""# Head rule under gradient weightings: weighted vs unweighted heads

Representation-level `GradientWeighting`, same aggregator, level and normalisation as `get_weighting(name)`; only
`heads` differs. MultiMNIST: {args.n_train:,} training pairs, {args.n_test:,} test pairs (data seed 0), MultiLeNet,
{args.epochs} epochs of `fit_one_cycle(1e-2)`, batch {args.bs}. Shapes: {args.n_shapes} generated 32 px images (seed 5), a
4-layer CNN with one 32-unit head per task, {args.shapes_epochs} epochs of `fit_one_cycle(1e-2)`, batch 32, 20% validation.
Mean ± standard deviation over seeds {', '.join(map(str, args.seeds))}. "mean accuracy" averages the two datasets' mean
task accuracies. Wins (weighted / unweighted / pairs, per dataset and seed, by mean accuracy):
{', '.join(f'{m}: {a}/{b}/{n}' for m,(a,b,n) in w.items())}.
{machine(device, args)}
Command: `{cmd}`

{md_table(summary(runs))}
"""

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--n-train', type=int, default=6000); p.add_argument('--n-test', type=int, default=2000)
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--bs', type=int, default=256)
    p.add_argument('--n-shapes', type=int, default=480); p.add_argument('--shapes-epochs', type=int, default=4)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--methods', nargs='+', default=['mgda', 'upgrad', 'nash_mtl'])
    args = p.parse_args()
    runs = main(args)
    runs.to_csv(RESULTS/f'head_rule_runs{suffix(args)}.csv', index=False)
    write('head_rule', report(runs, args, setup(args)), args)
