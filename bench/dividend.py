"""The dividend: one multi-task model with T heads against T separate single-task fastai learners, same data.

For T = 2, 3 and 8 classification tasks on the same in-memory images, `mtl_learner(dls, resnet18, tasks)` is
compared with T `vision_learner(dls_i, resnet18)`, one per task, each with its own `DataBlock` of one image
and one label. Each side gets the `DataLoader` its blocks give, as a user would (`TaskDL` for the task blocks,
fastai's `TfmdDL` for `CategoryBlock`), and both have the same small heads (`lin_ftrs=[64]`). Training: one epoch (with its validation pass) of the multi-task learner against one epoch of
each single-task learner; inference: `get_preds` on the same unlabelled test items. The two sides alternate in
every round and each ratio is the median over rounds of (multi-task time / sum of the T single-task times);
1/T is the limit when the heads and labels cost nothing. Writes bench/results/dividend.md and a plot of the
ratios against T, dividend.png.

    python bench/dividend.py [--rounds 3] [--tasks 2 3 8] [--device cuda] [--fp16]
"""
import argparse
import numpy as np, pandas as pd, torch
from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, ColReader, ColSplitter, resnet18, vision_learner,
                               accuracy, set_seed)
from fastai_mtl.all import Tasks, CategoryTask, mtl_learner
from common import add_device_args, setup, paired, median_ratio, machine, md_table, write, image_df, suffix, RESULTS

def dataloaders(df, blocks, get_y, args, device):
    dblock = DataBlock(blocks=(ImageBlock, *blocks), n_inp=1, get_x=ColReader('image'), get_y=get_y, splitter=ColSplitter('is_valid'))
    return dblock.dataloaders(df, bs=args.bs, num_workers=0, device=device)

def learners(n_tasks, args, device):
    "The multi-task learner, the single-task learners, and the test items"
    df = image_df(args.n, args.size, n_tasks)
    test = image_df(args.n_infer, args.size, 0, seed=1)
    tasks = Tasks(*[CategoryTask(f't{i}') for i in range(n_tasks)])
    set_seed(0)
    mtl = mtl_learner(dataloaders(df, tasks.blocks, tasks.getters, args, device), resnet18, tasks, pretrained=False, lin_ftrs=[64])
    singles = [vision_learner(dataloaders(df, [CategoryBlock], ColReader(f't{i}'), args, device), resnet18, pretrained=False,
                              lin_ftrs=[64], metrics=accuracy) for i in range(n_tasks)]
    if args.fp16: mtl, singles = mtl.to_fp16(), [l.to_fp16() for l in singles]
    return mtl, singles, test

def fit(*learns):
    for l in learns:
        with l.no_bar(), l.no_logging(): l.fit(1, 1e-3)

def predict(test, *learns):
    for l in learns:
        with l.no_bar(): l.get_preds(dl=l.dls.test_dl(test))

def main(args):
    device = setup(args)
    rows = []
    for n_tasks in args.tasks:
        mtl, singles, test = learners(n_tasks, args, device)
        train = paired({'mtl': lambda: fit(mtl), 'separate': lambda: fit(*singles)}, args.rounds, device)
        infer = paired({'mtl': lambda: predict(test, mtl), 'separate': lambda: predict(test, *singles)}, args.rounds, device)
        rows.append({'T': n_tasks, 'limit 1/T': f'{1/n_tasks:.2f}',
                     'train: MTL epoch (s)': f"{np.median(train['mtl']):.2f}", 'train: T separate (s)': f"{np.median(train['separate']):.2f}",
                     'train ratio': f"{median_ratio(train['mtl'], train['separate']):.2f}",
                     'inference: MTL (s)': f"{np.median(infer['mtl']):.2f}", 'inference: T separate (s)': f"{np.median(infer['separate']):.2f}",
                     'inference ratio': f"{median_ratio(infer['mtl'], infer['separate']):.2f}"})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)

def report(df, args, device):
    cmd = f"python bench/dividend.py --rounds {args.rounds} --n {args.n} --n-infer {args.n_infer} --size {args.size} --bs {args.bs}" + \
          (f" --device {args.device}" if args.device != 'cpu' else '') + (' --fp16' if args.fp16 else '')
    return f"""# The dividend: one multi-task model vs T single-task models

resnet18 body (from scratch), heads `lin_ftrs=[64]`, {args.size} px in-memory images, batch {args.bs}; training: one epoch of
{int(args.n*0.8)} items plus validation on {args.n - int(args.n*0.8)}; inference: `get_preds` on {args.n_infer} items. Each side with the
`DataLoader` its blocks give (`TaskDL` for the task blocks, `TfmdDL` for `CategoryBlock`). Ratio = multi-task time / total time of the T single-task learners, median of
{args.rounds} alternating rounds. Goal at T=3: inference <= 0.40, training <= 0.45.
{machine(device, args)}
Command: `{cmd}`

{md_table(df)}
"""

def plot(df, args):
    "The train and inference ratios against T, with the limit 1/T, in bench/results/dividend[_cuda[_fp16]].png"
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ts = df['T'].astype(int)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ts, 1/ts, 'k--', label='limit 1/T')
    for col in ('train ratio', 'inference ratio'): ax.plot(ts, df[col].astype(float), 'o-', label=col)
    ax.set(xlabel='number of tasks T', ylabel='multi-task / T single-task', xticks=list(ts), ylim=(0, 1))
    ax.legend(); ax.grid(alpha=.3); fig.tight_layout()
    fig.savefig(RESULTS/f'dividend{suffix(args)}.png', dpi=100)

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--rounds', type=int, default=3); p.add_argument('--tasks', type=int, nargs='+', default=[2, 3, 8])
    p.add_argument('--n', type=int, default=160); p.add_argument('--n-infer', type=int, default=128)
    p.add_argument('--size', type=int, default=64); p.add_argument('--bs', type=int, default=32)
    args = p.parse_args()
    df = main(args)
    write('dividend', report(df, args, setup(args)), args)
    plot(df, args)
