"""Step time of `mtl_unet_learner` with one segmentation task against fastai's `unet_learner` on the same data, and the cost of
a representation-level gradient weighting on a U-Net.

1. The same `DataLoaders` (64 px images with a per-pixel mask, 3 classes) feed both learners, built on resnet18 with
   `pretrained=False`: fastai's `unet_learner(dls, resnet18, n_out=3, loss_func=CrossEntropyLossFlat(axis=1))` and
   `mtl_unet_learner(dls, resnet18, Tasks(seg))`, the same architecture (their parameter counts are in the table). One epoch of
   `fit` is timed for each in turn in every round, the order alternating; the ratio is the median
   of the per-round ratios. Only the training steps are timed (the validation pass is skipped): `mtl_unet_learner` computes
   the task's metrics (mIoU and pixel accuracy over the validation set), which `unet_learner` is not given.
2. `mtl_unet_learner` on a segmentation task and an image-level one, one epoch with each weighting against `equal`, timed
   the same way: the representation-level gradient weightings take each task's gradient w.r.t. the encoder's output and its
   skip features (a backward pass through the decoder and heads per task), then one backward of the weighted sum.
Writes bench/results/unet_overhead.md (unet_overhead_cuda[_fp16].md on a GPU).

    python bench/unet_overhead.py [--rounds 5] [--n 80] [--size 64] [--bs 16] [--weightings equal upgrad mgda] [--device cuda] [--fp16]
"""
import argparse
import numpy as np, pandas as pd, torch
from fastai.vision.all import (DataBlock, ImageBlock, ColReader, ColSplitter, CrossEntropyLossFlat, resnet18, set_seed, unet_learner,
                               Callback, CancelValidException)
from fastai_mtl.all import Tasks, CategoryTask, SegmentationTask, mtl_unet_learner
from common import add_device_args, setup, paired, median_ratio, machine, md_table, write

def seg_df(n, size, seed=0):
    "`n` random images, a mask of 3 classes that is a function of the image (which channel is brightest), a label; last 20% validation"
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return pd.DataFrame(dict(image=list(imgs), seg=list(imgs.argmax(-1).astype(np.uint8)), label=rng.integers(0, 2, n),
                             is_valid=np.arange(n) >= int(0.8*n)))

def dataloaders(tasks, args, device):
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('image'), get_y=tasks.getters, splitter=ColSplitter('is_valid'))
    return dblock.dataloaders(seg_df(args.n, args.size), bs=args.bs, num_workers=0, device=device)

class SkipValidation(Callback):
    "Leave out the validation pass: the timings are of the training steps"
    def before_validate(self): raise CancelValidException

def epoch(learn):
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=SkipValidation())

def n_params(learn): return sum(p.numel() for p in learn.model.parameters())

def versus_fastai(args, device):
    tasks = Tasks(SegmentationTask('seg', codes=['r', 'g', 'b']))
    dls = dataloaders(tasks, args, device)
    set_seed(0); ours = mtl_unet_learner(dls, resnet18, tasks, pretrained=False)
    set_seed(0); theirs = unet_learner(dls, resnet18, n_out=3, pretrained=False, loss_func=CrossEntropyLossFlat(axis=1))
    if args.fp16: ours,theirs = ours.to_fp16(),theirs.to_fp16()
    times = paired({'mtl_unet_learner': lambda: epoch(ours), 'unet_learner': lambda: epoch(theirs)}, args.rounds, device)
    return pd.DataFrame([{'learner': k, 'parameters': f'{n_params(l):,}', 'epoch (median s)': f'{np.median(times[k]):.2f}',
                          'time / unet_learner': f"{median_ratio(times[k], times['unet_learner']):.2f}x"}
                         for k,l in (('mtl_unet_learner', ours), ('unet_learner', theirs))])

def weightings(args, device):
    tasks = Tasks(SegmentationTask('seg', codes=['r', 'g', 'b']), CategoryTask('label'))
    dls = dataloaders(tasks, args, device)
    learners = {}
    for w in dict.fromkeys(['equal', *args.weightings]):
        set_seed(0); learners[w] = mtl_unet_learner(dls, resnet18, tasks, pretrained=False, weighting=w)
        if args.fp16: learners[w] = learners[w].to_fp16()
    times = paired({w: (lambda l=l: epoch(l)) for w,l in learners.items()}, args.rounds, device)
    return pd.DataFrame([{'weighting': w, 'epoch (median s)': f'{np.median(times[w]):.2f}', 'time / equal': f"{median_ratio(times[w], times['equal']):.2f}x"}
                         for w in learners])

def report(vs, ws, args, device):
    cmd = f"python bench/unet_overhead.py --rounds {args.rounds} --n {args.n} --size {args.size} --bs {args.bs} --weightings {' '.join(args.weightings)}" + \
          (f" --device {args.device}" if args.device != 'cpu' else '') + (' --fp16' if args.fp16 else '')
    n_train = int(args.n*0.8)
    return f"""# U-Net overhead: `mtl_unet_learner` vs fastai's `unet_learner`, and gradient weightings on a U-Net

resnet18 encoder (`pretrained=False`), {args.size} px images, {n_train} training and {args.n - n_train} validation items, batch {args.bs},
the same `DataLoaders` for every learner; the training steps of one epoch of `fit` per timing (validation skipped), the learners alternating
within each of {args.rounds} rounds, each ratio the median of the per-round ratios.
{machine(device, args)}
Command: `{cmd}`

One segmentation task (3 classes), `mtl_unet_learner` against fastai's `unet_learner` (goal: at most 1.10x):

{md_table(vs)}

A segmentation task and an image-level task on one `mtl_unet_learner` (shared decoder), each weighting against equal
weighting. The representation-level gradient weightings (`upgrad`, `mgda`, ...) take each task's gradient w.r.t. the
encoder's output and its four skip features, which costs a backward pass through the decoder and the heads per task:

{md_table(ws)}
"""

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--n', type=int, default=80)
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--bs', type=int, default=16)
    p.add_argument('--weightings', nargs='+', default=['upgrad', 'mgda'])
    args = p.parse_args()
    device = setup(args)
    vs = versus_fastai(args, device); print(vs.to_string(), flush=True)
    ws = weightings(args, device); print(ws.to_string(), flush=True)
    write('unet_overhead', report(vs, ws, args, device), args)
