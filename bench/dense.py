"""Dense multi-task learning on the generated scenes: three single-task U-Nets (segmentation, depth, normals) vs one
multi-task U-Net under several weightings, the nine NYUv2 metrics, Δm% and the training-time ratio.

Every learner is `mtl_unet_learner(dls, encoder, tasks, pretrained=False)` (a small four-convolution encoder by default, `--arch resnet18` for fastai's) trained with `fit_one_cycle` on the same
split and seed; a single-task learner gets `single_task_dls` of its task (same items, same pipeline). Δm% (Maninis et al.;
the Nash-MTL/FAMO definition, `delta_m`) averages the nine relative changes against the single-task networks of the same
seed, signed so that lower is better. Time ratio: the multi-task network's training time over the sum of the three
single-task networks' training times, measured in the same run. Writes bench/results/dense.md.

    python bench/dense.py [--n 160] [--size 32] [--epochs 4] [--lr 1e-2] [--arch small] [--seeds 1] [--weightings equal upgrad ...] [--device cuda]
"""
import argparse, time
from copy import deepcopy
import numpy as np, pandas as pd, torch
from fastai.vision.all import DataBlock, ImageBlock, ColReader, RandomSplitter, ConvLayer, resnet18, fastai_path, nn
from fastai_mtl.all import (Tasks, SegmentationTask, DepthTask, NormalsTask, make_scenes, SCENE_CODES, mtl_unet_learner,
                            single_task_dls, set_seeds, delta_m)
from common import add_device_args, setup, machine, md_table, write, sync

NINE = ['seg_miou', 'seg_pixel_accuracy', 'depth_abs_err', 'depth_rel_err', 'normals_mean_angle', 'normals_median_angle',
        'normals_within_11_25', 'normals_within_22_5', 'normals_within_30']
WEIGHTINGS = ['equal', 'uncertainty', 'dwa', 'famo', 'upgrad', 'nash_mtl']

def small_encoder():
    "Four stride-2 convolutions, 256 features: what the tutorials use to learn the scenes in a minute on a CPU"
    return nn.Sequential(ConvLayer(3, 32, stride=2), ConvLayer(32, 64, stride=2), ConvLayer(64, 128, stride=2),
                         ConvLayer(128, 256, stride=2), nn.AdaptiveAvgPool2d(1))

def encoder(name): return small_encoder() if name == 'small' else resnet18 if name == 'resnet18' else name

def scene_dls(args, device):
    path = fastai_path('data')/f'bench_scenes_{args.n}_{args.size}'
    df = make_scenes(path, n=args.n, img_size=args.size, seed=0)
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES, getter=ColReader('seg', pref=path)),
                  DepthTask('depth', getter=ColReader('depth', pref=path)),
                  NormalsTask('normals', getter=ColReader('normals', pref=path)))
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('image', pref=path),
                       get_y=tasks.getters, splitter=RandomSplitter(seed=42))
    return dblock.dataloaders(df, bs=args.bs, num_workers=0, device=device), tasks

def train(dls, tasks, seed, args, device, weighting=None):
    "Train one U-Net; its metrics (by recorder name) and training seconds"
    set_seeds(seed, dls)
    learn = mtl_unet_learner(dls, encoder(args.arch), tasks, pretrained=False, weighting=weighting)
    if args.fp16: learn = learn.to_fp16()
    sync(device); start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(args.epochs, args.lr)
    sync(device); secs = time.perf_counter() - start
    return dict(zip(learn.recorder.metric_names[3:-1], map(float, learn.recorder.values[-1][2:]))), secs

def run(args, device):
    dls,tasks = scene_dls(args, device)
    rows = []
    for seed in range(args.seeds):
        single,single_time = {},0.
        for task in tasks:
            copy = deepcopy(task)
            m,secs = train(single_task_dls(dls, copy), Tasks(copy), seed, args, device)
            single.update({k: m[k] for k in NINE if k.startswith(task.name + '_')}); single_time += secs
        rows.append(dict(method='single-task (3 networks)', seed=seed, **single, delta_m=0., time_s=single_time, time_ratio=1.))
        for w in args.weightings:
            m,secs = train(dls, tasks, seed, args, device, weighting=w)
            m = {k: m[k] for k in NINE}
            rows.append(dict(method=w, seed=seed, **m, delta_m=delta_m(m, single), time_s=secs, time_ratio=secs/single_time))
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)

def table(runs):
    "Mean (± std over seeds when there are several) per method"
    g = runs.drop(columns='seed').groupby('method', sort=False)
    mean,std = g.mean(),g.std()
    fmt = {c: ('{:.3f}' if c in ('seg_miou', 'seg_pixel_accuracy', 'depth_abs_err', 'depth_rel_err', 'time_ratio') else '{:.2f}') for c in mean}
    out = mean.copy().astype(object)
    for c in mean:
        out[c] = [fmt[c].format(v) + ('' if np.isnan(s) else f' ± {fmt[c].format(s)}') for v,s in zip(mean[c], std[c])]
    return out.rename(columns=dict(delta_m='Δm %', time_s='train s', time_ratio='time / 3 single')).reset_index()

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=160, help='scenes (80%% training)')
    p.add_argument('--size', type=int, default=32, help='image size in pixels')
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--bs', type=int, default=16)
    p.add_argument('--arch', default='small', help="'small' (four convolutions), 'resnet18', or a timm model name")
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--seeds', type=int, default=1)
    p.add_argument('--weightings', nargs='+', default=WEIGHTINGS)
    args = add_device_args(p).parse_args()
    device = setup(args)
    runs = run(args, device)
    cmd = 'python bench/dense.py ' + ' '.join(f'--{k.replace("_", "-")} {" ".join(map(str, v)) if isinstance(v, list) else v}'
                                             for k,v in vars(args).items() if k not in ('device', 'fp16', 'tag', 'threads'))
    write('dense', f"""# Dense tasks: one multi-task U-Net vs three single-task U-Nets (generated scenes)

{args.n} generated scenes (`make_scenes`, 80% training) at {args.size} px; encoder `{args.arch}` from scratch, fastai's U-Net
decoder (`mtl_unet_learner`), `fit_one_cycle({args.epochs}, {args.lr})`, batch {args.bs}, {args.seeds} seed(s) (mean ± std over seeds
when more than one). Single-task: three networks, one per dense task, same recipe and seed. Δm %: mean relative change of the nine metrics
against the single-task networks of the same seed, signed so that lower is better (negative: multi-task better on average).
Time ratio: training time of the multi-task network / sum of the three single-task ones, same run. Default budget is tiny (to run in
minutes on a shared CPU): the networks are far from converged, so read the table as a smoke test of the comparison, not as a ranking.
{machine(device, args)}
Command: `{cmd}`

{md_table(table(runs))}
""", args)
    runs.to_csv(f'{__file__.rsplit("/", 1)[0]}/results/dense_runs.csv', index=False)

if __name__ == '__main__': main()
