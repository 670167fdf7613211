"""Deployment latency and throughput: `learn.predict`, `get_preds`, the torch-free ONNX predictor and T single-task models.

One multi-task resnet18 (T tasks of the generated shapes: shape, color, size, marks; 64 px PNG files) against T
single-task resnet18s with the same head: fastai's own `vision_learner` (one `CategoryBlock`, `RegressionBlock` or
`MultiCategoryBlock` each) for `predict` and `get_preds`, and `mtl_learner` with one task for the ONNX export (fastai
has no ONNX path of its own; `get_preds` of a one-task `mtl_learner` hits fastai's `detuplify` of a 1-tuple of
outputs). All untrained (`pretrained=False`: weights do not change the time). Every way of predicting reads the same image files and returns
every task's decoded answer:
- `learn.predict(file)` one image at a time (its batch-32 column is `predict_df(files, bs=32)`, its batched form);
- `learn.get_preds(dl=learn.dls.test_dl(files, bs=B))`: probabilities per task, decoded with `with_decoded=True`;
- `OnnxPredictor(export_onnx(...)).predict_many(files, bs=B)`: numpy + Pillow + onnxruntime, no torch;
- the same three ways for the T single-task models, one after the other (T passes over each image);
- the graph alone (`model(x)` in torch vs `session.run` in onnxruntime, on the same prepared batch), to separate
  the network from the data pipeline;
- dense tasks: a resnet18 U-Net (`mtl_unet_learner`: mask, depth, normals and the scene's label, on 64 px generated
  scenes), `learn.predict` (batch 1) and `get_preds(with_decoded=True)` (batch 32) against the ONNX predictor, which
  also decodes every map (mask class ids, depth, unit normals at the image's size).
Batch 1: median milliseconds per image over `--n1` images; batch 32: images per second over `--n32` images, timed by
this process's CPU time (`--clock cpu`, the default: every way runs on one thread, and on a shared machine wall time
mostly measures the waiting for a core; `--clock wall` for elapsed time). All ways alternate within each of `--rounds` rounds (bench/common.py's `paired`); torch and onnxruntime get the same number of
CPU threads. Writes bench/results/deploy.md.

    python bench/deploy.py [--rounds 3] [--n1 8] [--n32 64] [--threads 1]
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastai.vision.all import (resnet18, set_seed, first, DataBlock, ImageBlock, CategoryBlock, RegressionBlock, MultiCategoryBlock,
                               ColReader, RandomSplitter, vision_learner)
from fastai_mtl.all import (MTLLearner, Tasks, CategoryTask, RegressionTask, MultiCategoryTask, mtl_learner, make_shapes, shapes_dataloaders,
                            SegmentationTask, DepthTask, NormalsTask, mtl_unet_learner, make_scenes, SCENE_CODES)
from fastai_mtl.onnx import OnnxPredictor
from common import add_device_args, setup, paired, machine, md_table, write

SIZE, BS = 64, 32

def make_tasks(): return [CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks')]

def learner(path, df, tasks):
    set_seed(0)
    learn = mtl_learner(shapes_dataloaders(path, df, Tasks(*tasks), bs=BS, num_workers=0), resnet18, Tasks(*tasks), pretrained=False, lin_ftrs=[64])
    learn.model.eval()
    return learn

BLOCKS = dict(shape=CategoryBlock, color=CategoryBlock, size=RegressionBlock, marks=MultiCategoryBlock)

def fastai_learner(path, df, name):
    "fastai's single-task `vision_learner` for task `name`, with the multi-task model's body and head sizes"
    set_seed(0)
    dblock = DataBlock(blocks=(ImageBlock, BLOCKS[name]), get_x=ColReader('fname', pref=path),
                       get_y=ColReader(name, label_delim=' ' if name == 'marks' else None), splitter=RandomSplitter(seed=42))
    learn = vision_learner(dblock.dataloaders(df, bs=BS, num_workers=0), resnet18, pretrained=False, lin_ftrs=[64])
    learn.model.eval()
    return learn

def ways(name, learns, predictors, files1, files32):
    "{(way, batch): function} for one model (a list of one learner) or T single-task models (T learners, run one after the other)"
    def each(f): return lambda: [f(l) for l in learns]
    def each_p(f): return lambda: [f(p) for p in predictors]
    def rm(l): return {} if isinstance(l, MTLLearner) else dict(rm_type_tfms=1) # fastai's own learners: skip the `ColReader` for a file
    def silent_predict(l, f):
        with l.no_bar(): return l.predict(f, **rm(l))
    def preds(l, fs, bs):
        with l.no_bar(): return l.get_preds(dl=l.dls.test_dl(fs, bs=bs, **rm(l)), with_decoded=True)
    def predict_df(l, fs):
        with l.no_bar(): return l.predict_df(fs, bs=BS)
    res = {(f'{name}: learn.predict', 1): each(lambda l: [silent_predict(l, f) for f in files1])}
    if all(isinstance(l, MTLLearner) for l in learns): res[(f'{name}: learn.predict', BS)] = each(lambda l: predict_df(l, files32))
    return {**res,
            (f'{name}: get_preds', 1): each(lambda l: preds(l, files1, 1)),
            (f'{name}: get_preds', BS): each(lambda l: preds(l, files32, BS)),
            (f'{name}: OnnxPredictor', 1): each_p(lambda p: p.predict_many(files1, bs=1)),
            (f'{name}: OnnxPredictor', BS): each_p(lambda p: p.predict_many(files32, bs=BS))}

def graph_ways(learn, predictor, files32):
    "The network alone on one prepared batch of 32 and on one image: torch `model(x)` and onnxruntime `session.run`"
    dl = learn.dls.test_dl(files32[:BS], bs=BS)
    x = first(dl)[0].as_subclass(torch.Tensor)
    raw = predictor.graph_inputs(files32[:BS])
    def torch_run(x):
        with torch.no_grad(): return learn.model(x)
    return {('graph only: torch model(x)', 1): lambda: [torch_run(x[i:i+1]) for i in range(8)],
            ('graph only: torch model(x)', BS): lambda: torch_run(x),
            ('graph only: onnxruntime', 1): lambda: [predictor.session.run(None, {'image': raw['image'][i:i+1]}) for i in range(8)],
            ('graph only: onnxruntime', BS): lambda: predictor.session.run(None, raw)}

def unet(path, n):
    "An untrained resnet18 U-Net for the generated scenes' mask, depth, normals and label, and the scenes' image files"
    df = make_scenes(path/'scenes', n=n, img_size=SIZE, seed=0)
    reader = lambda col: ColReader(col, pref=path/'scenes')
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES, getter=reader('seg')), DepthTask('depth', unit='m', getter=reader('depth')),
                  NormalsTask('normals', getter=reader('normals')), CategoryTask('scene'))
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=reader('image'), get_y=tasks.getters, splitter=RandomSplitter(seed=0))
    set_seed(0)
    learn = mtl_unet_learner(dblock.dataloaders(df, bs=BS, num_workers=0), resnet18, tasks, pretrained=False, lin_ftrs=[64])
    learn.model.eval()
    return learn,[path/'scenes'/f for f in df.image]

def dense_ways(learn, predictor, files1, files32):
    "{(way, batch): function} for the U-Net: `learn.predict` one image at a time, `get_preds` 32 at a time, the ONNX predictor both ways"
    def predict(f):
        with learn.no_bar(): return learn.predict(f)
    def preds(fs, bs):
        with learn.no_bar(): return learn.get_preds(dl=learn.dls.test_dl(fs, bs=bs), with_decoded=True)
    name = 'U-Net (mask, depth, normals, label)'
    return {(f'{name}: learn.predict', 1): lambda: [predict(f) for f in files1],
            (f'{name}: get_preds', BS): lambda: preds(files32, BS),
            (f'{name}: OnnxPredictor', 1): lambda: predictor.predict_many(files1, bs=1),
            (f'{name}: OnnxPredictor', BS): lambda: predictor.predict_many(files32, bs=BS)}

def main(args):
    device = setup(args)
    if device.type != 'cpu': raise SystemExit('bench/deploy.py measures CPU deployment: onnxruntime runs on the CPU here')
    path = Path(tempfile.mkdtemp())
    df = make_shapes(path, n=max(args.n32, args.n1, 64), img_size=SIZE, seed=0)
    files = [path/f for f in df.fname]
    files1, files32 = files[:args.n1], files[:args.n32]
    mtl = learner(path, df, make_tasks())
    singles = [fastai_learner(path, df, t.name) for t in make_tasks()]
    def onnx(l, name): return OnnxPredictor(l.export_onnx(path/f'{name}.onnx'), threads=args.threads)
    mtl_p, single_p = onnx(mtl, 'mtl'), [onnx(learner(path, df, [t]), t.name) for t in make_tasks()]
    ulearn,ufiles = unet(path, max(args.n32, args.n1, 2*BS)) # A training batch of 32 sets the U-Net up
    unet_p = OnnxPredictor(ulearn.export_onnx(path/'unet.onnx'), threads=args.threads)
    fs = {**ways(f'multi-task (1 model, {len(make_tasks())} heads)', [mtl], [mtl_p], files1, files32),
          **dense_ways(ulearn, unet_p, ufiles[:args.n1], ufiles[:args.n32]),
          **ways(f'{len(singles)} single-task models', singles, single_p, files1, files32), **graph_ways(mtl, mtl_p, files32)}
    times = paired(fs, args.rounds, device, clock=time.process_time if args.clock == 'cpu' else time.perf_counter)
    n = {1: args.n1, BS: args.n32}
    rows = {}
    for (way,bs),ts in times.items():
        per = np.median(ts)/(8 if way.startswith('graph') and bs == 1 else BS if way.startswith('graph') else n[bs])
        row = rows.setdefault(way, {'way': way})
        if bs == 1: row['batch 1: ms / image'] = f'{1000*per:.1f}'
        else: row['batch 32: images / s'] = f'{1/per:.0f}'
    table = pd.DataFrame(list(rows.values())).fillna('-')
    mt = {k: np.median(v) for k,v in times.items()}
    def ratio(way, bs): return mt[(f'{len(singles)} single-task models: {way}', bs)]/mt[(f'multi-task (1 model, {len(make_tasks())} heads): {way}', bs)]
    ratios = pd.DataFrame([dict(way=w, **{'batch 1': f'{ratio(w, 1):.2f}x', 'batch 32': f'{ratio(w, BS):.2f}x'})
                           for w in ('get_preds', 'OnnxPredictor')] + [dict(way='learn.predict', **{'batch 1': f"{ratio('learn.predict', 1):.2f}x", 'batch 32': '-'})])
    onnx_vs = pd.DataFrame([dict(model=m, **{'batch 1': f"{mt[(f'{m}: learn.predict', 1)]/mt[(f'{m}: OnnxPredictor', 1)]:.2f}x",
                                             'batch 32': f"{mt[(f'{m}: get_preds', BS)]/mt[(f'{m}: OnnxPredictor', BS)]:.2f}x"})
                            for m in (f'multi-task (1 model, {len(make_tasks())} heads)', f'{len(singles)} single-task models', 'U-Net (mask, depth, normals, label)')])
    return f"""# Deployment: latency and throughput of the ways to predict

resnet18, 64 px PNG files of the generated shapes, {len(make_tasks())} tasks (shape, color, size, marks); untrained models
(`pretrained=False`). Every way reads the image files and returns every task's decoded answer. Batch 1: median over
{args.rounds} rounds of the {'CPU' if args.clock == 'cpu' else 'wall'} time per image over {args.n1} images (the graph-only rows: 8 prepared images); batch 32:
images per second over {args.n32} images (graph only: one prepared batch of 32). `learn.predict` has no batch: its
batch-32 column is the multi-task `predict_df(files, bs=32)` (fastai has no `predict_df`). The U-Net rows: a resnet18
U-Net (`mtl_unet_learner`, untrained) for the mask, depth (m), normals and label of 64 px generated scenes; the ONNX
predictor decodes every map as `learn.predict` does (its batch-32 comparison is with `get_preds`, which decodes the
maps at the model's size). The ways alternate within each round.
{machine(device, args)} onnxruntime: the same number of threads ({args.threads}).
Command: `python bench/deploy.py --rounds {args.rounds} --n1 {args.n1} --n32 {args.n32} --clock {args.clock}`

{md_table(table)}

Time of the {len(singles)} single-task models over the one multi-task model (above 1: the multi-task model is faster):

{md_table(ratios)}

Speed-up of the ONNX predictor over fastai (batch 1: over `learn.predict`; batch 32: over `get_preds`):

{md_table(onnx_vs)}
"""

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--n1', type=int, default=8, help='images timed one at a time')
    p.add_argument('--n32', type=int, default=64, help='images timed in batches of 32')
    p.add_argument('--clock', default='cpu', choices=['cpu', 'wall'], help="'cpu': this process's CPU time (steady on a shared machine, every way runs on one thread); 'wall': elapsed time")
    args = p.parse_args()
    write('deploy', main(args), args)
