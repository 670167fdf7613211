"""MultiMNIST's gap between single-task and multi-task at 10 epochs, under the levers that might close it.

bench/multimnist.py finds the two-task MultiLeNet 0.8-1.3 points below a single-task network per digit at 10 epochs. Each
lever changes one thing of that recipe, for the single-task networks and the two-task one (`equal` weights, and
`--method`) alike, so that each row compares like with like: the width of the shared representation (50 features in
the paper: two digits may need more room than one), the heads' own learning rate (`Task(lr_mult=...)`: with two tasks
the body gets two gradients a step while each head gets one) and fastai's `fit_flat_cos` schedule instead of
`fit_one_cycle` (`--levers` also offers a width of 100 and a lower learning rate). Same data, seeds and test split as bench/multimnist.py (whose `train` runs every
configuration); the gap is the two-task accuracy minus the single-task one, per digit, and Δm (`delta_m`) is over
the two accuracies. Writes bench/results/multimnist_levers.md.

    python bench/multimnist_levers.py [--n-train 60000] [--epochs 10] [--seeds 0 1 2] [--method upgrad] [--levers ...]
"""
import argparse, time
import pandas as pd
from fastai_mtl.all import make_multimnist, delta_m
from multimnist import train, add_protocol_args, recipe, _mean_std
from common import setup, machine, md_table, write, suffix, RESULTS

LEVERS = {  # name: the options it changes from bench/multimnist.py's recipe
    'paper recipe': {}, 'width 100': dict(width=100), 'width 200': dict(width=200), 'heads lr x3': dict(head_lr_mult=3.),
    'lr 3e-3': dict(lr=3e-3), 'fit_flat_cos': dict(schedule='flat_cos')}

def configs(method):
    "(label, tasks, weighting) of every network a lever trains"
    return [('single-task', ['left'], None), ('single-task', ['right'], None), ('equal', ['left', 'right'], 'equal')] + \
           ([(method, ['left', 'right'], method)] if method else [])

def main(args, out):
    device = setup(args)
    df = make_multimnist(n_train=args.n_train, n_test=args.n_test, seed=0)
    runs = []
    for seed in args.seeds:
        for lever in args.levers:
            a = argparse.Namespace(**{**vars(args), **LEVERS[lever]})
            for label, names, weighting in configs(args.method):
                start = time.perf_counter()
                acc = train(df, names, weighting, seed, a, device)
                runs.append(dict(lever=lever, method=label, seed=seed, seconds=time.perf_counter() - start, **acc))
                print(runs[-1], flush=True)
                pd.DataFrame(runs).to_csv(out, index=False)   # after every run: a long run stopped early keeps what it measured
    return pd.DataFrame(runs)

def summary(runs):
    "Per lever and method: each digit's accuracy, its gap to the single-task networks of the same lever, Δm"
    rows = []
    for lever, g in runs.groupby('lever', sort=False):
        single = g[g.method == 'single-task'].groupby('seed')[['left', 'right']].max()   # one network per digit: each row has one
        for method, m in g[g.method != 'single-task'].groupby('method', sort=False):
            m = m.set_index('seed')[['left', 'right']]
            gap = m - single.loc[m.index]
            dm = pd.Series([delta_m(m.loc[s].to_dict(), single.loc[s].to_dict(), higher=['left', 'right']) for s in m.index])
            rows.append({'lever': lever, 'single-task left / right (%)': f"{_mean_std(single.left)} / {_mean_std(single.right)}",
                         'method': method, 'left / right (%)': f"{_mean_std(m.left)} / {_mean_std(m.right)}",
                         'gap left / right (points)': f"{gap.left.mean():+.2f} / {gap.right.mean():+.2f}",
                         'Δm (%)': f"{dm.mean():+.2f} ± {dm.std(ddof=0):.2f}", 'training s / run': f"{g.seconds.median():.0f}"})
    return pd.DataFrame(rows)

def report(runs, args, device):
    cmd = f"python bench/multimnist_levers.py --n-train {args.n_train} --n-test {args.n_test} --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}" + \
          (f" --method {args.method}" if args.method else '') + f"{recipe(args)} --levers " + ' '.join(f"'{l}'" for l in args.levers)
    return f"""# MultiMNIST: levers on the single-task / multi-task gap at {args.epochs} epochs

{__doc__.split(chr(10)*2)[1]}

Recipe as bench/multimnist.py: {args.n_train:,} training pairs, {args.n_test:,} test pairs, MultiLeNet (dropout {args.p}), {args.epochs} epochs of
`fit_one_cycle(lr={args.lr:g})` unless the lever says otherwise, fastai's Adam, batch {args.bs}. Mean ± standard deviation over
seeds {', '.join(map(str, args.seeds))}; the gap and Δm are taken per seed (single-task and two-task from the same seed), then averaged. Δm < 0: the
two-task network is better on average.
{machine(device, args)}
Command: `{cmd}`

{md_table(summary(runs))}
"""

if __name__ == '__main__':
    p = add_protocol_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--method', default='', help='a weighting method to train beside `equal` under every lever')
    p.add_argument('--levers', nargs='+', default=list(LEVERS), choices=list(LEVERS))
    args = p.parse_args()
    out = RESULTS/f'multimnist_levers_runs{suffix(args)}.csv'
    runs = pd.read_csv(out) if args.from_csv else main(args, out)
    write('multimnist_levers', report(runs, args, setup(args)), args)
