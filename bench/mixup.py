"""Multi-task MixUp and CutMix on the generated shapes: each task's validation metrics without mixing, with `MTLMixUp()`
and with `MTLCutMix()`, side by side in one run with the same seeds.

resnet18 from scratch (`pretrained=False`, head `lin_ftrs=[64]`), 32 px, the four shape tasks (shape, color: categories;
size: regression in px; marks: multi-category at weight 0.5), `fit_one_cycle(epochs, 1e-2)`, batch 32. For each seed
the data split, the initialisation and the batches' order are the same for the three runs (`set_seed(seed, reproducible=True)`).

Writes bench/results/mixup.md and bench/results/mixup_runs.csv (with `--tag T`: mixup_T.md, mixup_runs_T.csv).

    python bench/mixup.py [--seeds 3] [--epochs 8] [--n 600]
"""
import argparse, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastai.vision.all import resnet18, set_seed
from fastai_mtl.all import Tasks, CategoryTask, RegressionTask, MultiCategoryTask, make_shapes, shapes_dataloaders, mtl_learner, MTLMixUp, MTLCutMix
from common import add_device_args, setup, machine, md_table, write, suffix, RESULTS

warnings.filterwarnings('ignore')
MIXES = dict(none=lambda: None, mixup=MTLMixUp, cutmix=MTLCutMix)
METRICS = ('shape_accuracy', 'color_accuracy', 'size_mae', 'marks_accuracy_multi', 'valid_loss')

def tasks(): return Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks', weight=0.5))

def run(path, df, mix, seed, args, device):
    "The final validation metrics of one training, and its seconds"
    set_seed(seed, reproducible=True)
    ts = tasks()
    dls = shapes_dataloaders(path, df, ts, bs=32, seed=seed, num_workers=0, device=device)
    learn = mtl_learner(dls, resnet18, ts, pretrained=False, lin_ftrs=[64])
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(args.epochs, 1e-2, cbs=MIXES[mix]())
    res = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
    return dict(mix=mix, seed=seed, seconds=time.perf_counter() - start, **{m: res[m] for m in METRICS})

def main():
    p = add_device_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--n', type=int, default=600, help='images (20% for validation)')
    args = p.parse_args()
    device = setup(args)
    path = Path(tempfile.mkdtemp())
    df = make_shapes(path, n=args.n, img_size=32, seed=1)
    res = pd.DataFrame([run(path, df, mix, seed, args, device) for seed in range(args.seeds) for mix in MIXES])
    res.to_csv(RESULTS/f'mixup_runs{suffix(args)}.csv', index=False)
    g = res.groupby('mix', sort=False)
    m, s = g[list(METRICS)].mean(), g[list(METRICS)].std()
    table = pd.DataFrame({'mixing': m.index, **{c: [f'{a:.3f} ± {b:.3f}' for a,b in zip(m[c], s[c])] for c in METRICS},
                          'seconds': g['seconds'].median().round(1).values})
    tag = f' --tag {args.tag}' if args.tag else ''
    write('mixup', f"# Multi-task MixUp and CutMix on the shapes\n\n`python bench/mixup.py --seeds {args.seeds} --epochs {args.epochs} --n {args.n}{tag}`. "
          f"{machine(device, args)}\n\n{__doc__.split(chr(10)+chr(10))[1]}\n\nValidation metrics after the last epoch, mean ± sd over "
          f"{args.seeds} seeds (size MAE in px; seconds: the median training time).\n\n{md_table(table)}\n", args)

if __name__ == '__main__': main()
