"""Data pipeline cost of the dense tasks: time per item of a `DataBlock` with three dense task blocks (segmentation, depth,
normals) against fastai's one-mask segmentation `DataBlock` (`MaskBlock`) on the same generated scenes, same batch size.

One timing = one pass over the training `DataLoader` (files read, decoded, collated); the two alternate in every round
and the ratio is the median of the per-round ratios. One row per image size. Writes bench/results/dense_pipeline.md.

    python bench/dense_pipeline.py [--n 160] [--sizes 32 128] [--rounds 5]
"""
import argparse
from fastai.vision.all import DataBlock, ImageBlock, MaskBlock, ColReader, RandomSplitter, fastai_path
from fastai_mtl.all import Tasks, SegmentationTask, DepthTask, NormalsTask, make_scenes, SCENE_CODES
from common import add_device_args, setup, paired, median_ratio, machine, write
import numpy as np, time

def loaders(n, size, bs, device):
    "The training `DataLoader`s of the three-dense-task and the one-mask `DataBlock` on `n` scenes of `size` px"
    path = fastai_path('data')/f'bench_scenes_{n}_{size}'
    df = make_scenes(path, n=n, img_size=size, seed=0)
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES, getter=ColReader('seg', pref=path)),
                  DepthTask('depth', getter=ColReader('depth', pref=path)), NormalsTask('normals', getter=ColReader('normals', pref=path)))
    common = dict(get_x=ColReader('image', pref=path), splitter=RandomSplitter(seed=42))
    dense = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_y=tasks.getters, **common)
    mask = DataBlock(blocks=(ImageBlock, MaskBlock(SCENE_CODES)), get_y=ColReader('seg', pref=path), **common)
    return {k: b.dataloaders(df, bs=bs, num_workers=0, device=device).train for k,b in (('three dense tasks', dense), ('fastai MaskBlock', mask))}

def row(size, dls, rounds, device):
    "Markdown row of one size: ms per item of each `DataLoader` (median) and the median per-round ratio, in wall and in CPU time"
    n,fs = len(dls['fastai MaskBlock'].dataset),{k: (lambda dl=dl: [None for _ in dl]) for k,dl in dls.items()}
    cells = []
    for clock in (time.perf_counter, time.process_time):
        times = paired(fs, rounds, device, clock=clock)
        ratio = median_ratio(times['three dense tasks'], times['fastai MaskBlock'])
        cells += [*(f'{np.median(v)/n*1e3:.2f}' for v in times.values()), f'**{ratio:.2f}×**']
    return f"| {size}x{size} | {' | '.join(cells)} | {'yes' if ratio <= 1.2 else 'no'} |"

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=160)
    p.add_argument('--sizes', type=int, nargs='+', default=[32, 128], help='image sizes in pixels, one row each (NYUv2 is 288x384)')
    p.add_argument('--bs', type=int, default=16)
    p.add_argument('--rounds', type=int, default=5)
    args = add_device_args(p).parse_args()
    device = setup(args)
    rows = '\n'.join(row(s, loaders(args.n, s, args.bs, device), args.rounds, device) for s in args.sizes)
    write('dense_pipeline', f"""# Data pipeline: three dense task blocks vs fastai's one-mask `DataBlock`

{args.n} generated scenes (PNG image and mask, `.npy` depth and normals), batch {args.bs}, no augmentation;
one pass over the {args.n - int(args.n*0.2)} training items (`RandomSplitter`) per timing, {args.rounds} alternating rounds per size and clock:
wall time, then this process's CPU time (steadier on a shared machine: another job's load does not count). Times per item
are medians over rounds, ratios the medians of the per-round ratios. Goal: ≤ 1.2×.
{machine(device, args)}
Command: `python bench/dense_pipeline.py --n {args.n} --sizes {' '.join(map(str, args.sizes))} --rounds {args.rounds}`

| Image size | three dense tasks, ms per item | fastai MaskBlock, ms per item | ratio | three dense tasks, CPU ms per item | fastai MaskBlock, CPU ms per item | CPU-time ratio | ≤ 1.2× (CPU time) |
|---|---|---|---|---|---|---|---|
{rows}

The three-task block reads four files per item (image, mask, depth, normals) where fastai's reads two (image, mask),
and checks each target (class ids, sizes, unit normals); the ratio is the cost per item of a user's dense multi-task
pipeline against the fastai pipeline of its segmentation task alone. `TaskDL` reads each file-name column once, so an
item runs only the readers; what is left above fastai's is reading, checking and collating the two extra files (four float
channels per pixel, five times the bytes of the image).
""", args)

if __name__ == '__main__': main()
