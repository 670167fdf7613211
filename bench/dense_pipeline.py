"""Data pipeline cost of the dense tasks: time per item of a `DataBlock` with three dense task blocks (segmentation, depth,
normals) against fastai's one-mask segmentation `DataBlock` (`MaskBlock`) on the same generated scenes, same batch size.

One timing = one pass over the training `DataLoader` (files read, decoded, collated); the two alternate in every round
and the ratio is the median of the per-round ratios. Writes bench/results/dense_pipeline.md.

    python bench/dense_pipeline.py [--n 160] [--size 32] [--rounds 5]
"""
import argparse
from fastai.vision.all import DataBlock, ImageBlock, MaskBlock, ColReader, RandomSplitter, fastai_path
from fastai_mtl.all import Tasks, SegmentationTask, DepthTask, NormalsTask, make_scenes, SCENE_CODES
from common import add_device_args, setup, paired, median_ratio, machine, write
import numpy as np

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=160)
    p.add_argument('--size', type=int, default=32)
    p.add_argument('--bs', type=int, default=16)
    p.add_argument('--rounds', type=int, default=5)
    args = add_device_args(p).parse_args()
    device = setup(args)
    path = fastai_path('data')/f'bench_scenes_{args.n}_{args.size}'
    df = make_scenes(path, n=args.n, img_size=args.size, seed=0)
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES, getter=ColReader('seg', pref=path)),
                  DepthTask('depth', getter=ColReader('depth', pref=path)), NormalsTask('normals', getter=ColReader('normals', pref=path)))
    common = dict(get_x=ColReader('image', pref=path), splitter=RandomSplitter(seed=42))
    dense = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_y=tasks.getters, **common)
    mask = DataBlock(blocks=(ImageBlock, MaskBlock(SCENE_CODES)), get_y=ColReader('seg', pref=path), **common)
    dls = {k: b.dataloaders(df, bs=args.bs, num_workers=0, device=device).train for k,b in (('three dense tasks', dense), ('fastai MaskBlock', mask))}
    n = len(dls['fastai MaskBlock'].dataset)
    times = paired({k: (lambda dl=dl: [None for _ in dl]) for k,dl in dls.items()}, args.rounds, device)
    ratio = median_ratio(times['three dense tasks'], times['fastai MaskBlock'])
    rows = '\n'.join(f'| {k} | {np.median(v)/n*1e3:.2f} |' for k,v in times.items())
    write('dense_pipeline', f"""# Data pipeline: three dense task blocks vs fastai's one-mask `DataBlock`

{args.n} generated scenes at {args.size} px (PNG image and mask, `.npy` depth and normals), batch {args.bs}, no augmentation;
one pass over the {n} training items per timing, {args.rounds} alternating rounds. Goal: ≤ 1.2×.
{machine(device, args)}
Command: `python bench/dense_pipeline.py --n {args.n} --size {args.size} --rounds {args.rounds}`

| DataBlock | ms per item (median) |
|---|---|
{rows}

Ratio (three dense tasks / one mask, median of per-round ratios): **{ratio:.2f}×**. The three-task block reads four files per item
(image, mask, depth, normals) where fastai's reads two (image, mask), and checks each target (codes, sizes, unit normals); the ratio is
the cost per item of a user's dense multi-task pipeline against the fastai pipeline of its segmentation task alone.
""", args)

if __name__ == '__main__': main()
