"""Data pipeline: time per item of a `DataBlock` with T task blocks against fastai's one-label `DataBlock`.

The same images, as in-memory uint8 arrays or as PNG files (and, for scale, larger JPEG files resized to
224 px as in a typical vision task), go through fastai's standard per-item pipeline
(`num_workers=0`, one pass over the shuffled training `DataLoader`) with
- `fastai (ImageBlock, CategoryBlock)`: one label, the baseline;
- `fastai_mtl, T tasks`: `(ImageBlock, *tasks.blocks)` with T `CategoryTask`s, served by the blocks' `TaskDL`, which
  encodes the targets once (its one-off encoding is timed separately) and runs the per-item pipeline for the image only;
- `fastai_mtl, 3 tasks, TfmdDL`: the same `DataBlock` with fastai's `TfmdDL`, which runs one pipeline per block and
  item (what `TaskDL` replaces);
- `fastai_mtl, T tasks, InMemoryDL` (in-memory arrays only): the same `DataBlock` served by `InMemoryDL`, which
  encodes the dataset once and then slices tensors (its one-off encoding is timed separately).
All variants run in turn in every round (order alternating); a ratio is the median over rounds of the per-round
ratio to the baseline. Writes bench/results/pipeline.md.

    python bench/pipeline.py [--rounds 5] [--n 512] [--tasks 1 2 3 8]
"""
import argparse, tempfile
from pathlib import Path
import numpy as np, pandas as pd, torch
from PIL import Image
from fastai.vision.all import DataBlock, ImageBlock, CategoryBlock, ColReader, ColSplitter, Resize, set_seed
from fastai.vision.all import TfmdDL
from fastai_mtl.all import Tasks, CategoryTask, InMemoryDL, TaskDL
from common import add_device_args, setup, paired, median_ratio, machine, md_table, write, image_df, timed

def with_files(df, path, ext='png'):
    "`df` with its images written to files, their paths in the `image` column"
    fnames = [str(path/f'{i:05d}_{a.shape[0]}.{ext}') for i,a in enumerate(df.image)]
    for a,f in zip(df.image, fnames): Image.fromarray(a).save(f)
    return df.assign(image=fnames)

def train_dl(df, blocks, get_y, bs, item_tfms=None, **kwargs):
    set_seed(0)
    dblock = DataBlock(blocks=(ImageBlock, *blocks), n_inp=1, get_x=ColReader('image'), get_y=get_y, splitter=ColSplitter('is_valid'),
                       item_tfms=item_tfms)
    return dblock.dataloaders(df, bs=bs, num_workers=0, device='cpu', **kwargs).train

def one_pass(dl):
    for _ in dl: pass

def variants(df, task_counts, bs, in_memory, **kwargs):
    dls = {'fastai (ImageBlock, CategoryBlock)': train_dl(df, [CategoryBlock], ColReader('t0'), bs, **kwargs)}
    for t in task_counts:
        tasks = Tasks(*[CategoryTask(f't{i}') for i in range(t)])
        dls[f'fastai_mtl, {t} task{"s"*(t>1)}'] = train_dl(df, tasks.blocks, tasks.getters, bs, **kwargs)
        if t == 3: dls['fastai_mtl, 3 tasks, TfmdDL'] = train_dl(df, tasks.blocks, tasks.getters, bs, dl_type=TfmdDL, **kwargs)
    if in_memory:
        for t in task_counts:
            tasks = Tasks(*[CategoryTask(f't{i}') for i in range(t)])
            dls[f'fastai_mtl, {t} task{"s"*(t>1)}, InMemoryDL'] = train_dl(df, tasks.blocks, tasks.getters, bs, dl_type=InMemoryDL)
    return dls

def main(args):
    device = setup(args)
    df = image_df(args.n, args.size, max(args.tasks))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big = with_files(image_df(args.n_big, 256, max(args.tasks)), Path(tmp), 'jpg')
        sources = ((f'in-memory {args.size} px arrays', df, {}), (f'{args.size} px PNG files', with_files(df, Path(tmp)), {}),
                   ('256 px JPEG files, Resize(224)', big, dict(item_tfms=Resize(224))))
        for source, data, kwargs in sources:
            dls = variants(data, args.tasks, args.bs, source.startswith('in-memory'), **kwargs)
            encode = {k: timed(dl.encoded if isinstance(dl, InMemoryDL) else dl.encoded_targets, device) for k,dl in dls.items() if isinstance(dl, TaskDL)}
            times = paired({k: (lambda dl=dl: one_pass(dl)) for k,dl in dls.items()}, args.rounds, device)
            base = 'fastai (ImageBlock, CategoryBlock)'
            for k,dl in dls.items():
                n = len(dl)*dl.bs
                rows.append({'images': source, 'DataBlock': k, 'µs per item (median)': f'{np.median(times[k])/n*1e6:.0f}',
                             'items/s': f'{n/np.median(times[k]):.0f}', 'time / one-label fastai': f'{median_ratio(times[k], times[base]):.2f}x',
                             'one-off encoding (s)': f'{encode[k]:.2f}' if k in encode else ''})
            print(pd.DataFrame(rows).to_string(), flush=True)
    return pd.DataFrame(rows)

def report(df, args, device):
    return f"""# Data pipeline: time per item with T task blocks

{args.n} random {args.size} px RGB images and, for scale, {args.n_big} random 256 px JPEG files read with `item_tfms=Resize(224)`; 80% in the
training set, batches of {args.bs}, random labels; one pass over the
shuffled training `DataLoader` per timing, `num_workers=0`; ratios to the one-label fastai `DataBlock` are medians of
{args.rounds} alternating rounds. Goal: <= 1.10x per item at T=3.
{machine(device, args)}
Command: `python bench/pipeline.py --rounds {args.rounds} --n {args.n} --n-big {args.n_big} --size {args.size} --bs {args.bs}`

{md_table(df)}
"""

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--rounds', type=int, default=5); p.add_argument('--tasks', type=int, nargs='+', default=[1, 2, 3, 8])
    p.add_argument('--n', type=int, default=512); p.add_argument('--n-big', type=int, default=160); p.add_argument('--size', type=int, default=64); p.add_argument('--bs', type=int, default=64)
    args = p.parse_args()
    df = main(args)
    write('pipeline', report(df, args, setup(args)), args)
