"""Train `mtl_learner` with several weightings, distributed (`torchrun --nproc_per_node 2 ddp_train.py DATA OUT w1 w2 ...`)
inside `learn.distrib_ctx()` on the CPU with gloo, or in one process (`python ddp_train.py --single DATA OUT ...`) on the same
global batches, for comparison; `--missing DATA OUT`: validation metrics of a model trained distributed on data with missing
labels, and (with `--single`) of the same weights in one process. Each process writes `OUT/rank{r}.json`: per weighting, the final recorder row and a checksum
of the model's and the loss function's parameters."""
import sys, json, os, warnings
from pathlib import Path
import torch
from torch import nn
from fastai.vision.all import ConvLayer, set_seed, rank_distrib, num_distrib
from fastai.distributed import *
from fastai_mtl.all import (make_shapes, # fastai_mtl.scale lets fastai's DistributedDL run with gloo on CPUs
                            shapes_dataloaders, mtl_learner, Tasks, CategoryTask, RegressionTask,
                            MultiCategoryTask, MMoE, MTAN)

BS = 16 # Per process: the single-process reference uses 2*BS

def arch(): return nn.Sequential(ConvLayer(3, 8, stride=2, norm_type=None), nn.Sequential(ConvLayer(8, 16, stride=2, norm_type=None)),
                                 nn.Sequential(ConvLayer(16, 16, norm_type=None)), nn.AdaptiveAvgPool2d(1))
SHARINGS = dict(mmoe=lambda: MMoE(n_experts=2, expert_size=16), mtan=MTAN)   # `weighting@sharing` on the command line

def interleaved(n, bs, world=2):
    "Item order whose batches of `world*bs` hold what the `world` processes see in their batches of `bs` (contiguous shards)"
    shard = n//world
    return [s*shard + k*bs + i for k in range(shard//bs) for s in range(world) for i in range(bs)]

def learner(path, run, single):
    "The learner of `run`: a weighting name, or `weighting@sharing` for a soft sharing of the body"
    weighting, _, sharing = run.partition('@')
    df = make_shapes(path, n=160, img_size=32, seed=3)
    tasks = Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks'))
    dls = shapes_dataloaders(path, df, tasks, bs=BS*(2 if single else 1), shuffle=False, num_workers=0)
    if single:
        idxs = interleaved(len(dls.train_ds), BS)
        dls.train.get_idxs = lambda: idxs
    set_seed(42)
    return mtl_learner(dls, arch(), tasks, pretrained=False, weighting=weighting, lin_ftrs=[], ps=0., first_bn=False,
                       sharing=SHARINGS[sharing]() if sharing else None)

def checksum(learn):
    "Sum and sum of squares of the model's and loss function's parameters"
    ps = list(learn.model.parameters()) + list(learn.loss_func.parameters())
    return [sum(p.detach().double().sum().item() for p in ps), sum(p.detach().double().pow(2).sum().item() for p in ps)]

def validate_missing(data, out, single):
    "Validation metrics, with 30% of each task's labels missing, of a model trained one epoch distributed (`single`: of its weights)"
    df = make_shapes(data, n=160, img_size=32, seed=3, missing=0.3)
    tasks = Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks'))
    set_seed(42)
    dls = shapes_dataloaders(data, df, tasks, bs=BS, num_workers=0)
    learn = mtl_learner(dls, arch(), tasks, pretrained=False, lin_ftrs=[], ps=0., first_bn=False)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if single: learn.model.load_state_dict(torch.load(Path(out)/'model.pth'))
        else:
            with learn.distrib_ctx(sync_bn=False, cpu=True):
                learn.fit(1, 1e-2)
                values = learn.validate()
            if rank_distrib(): return
            torch.save(learn.model.state_dict(), Path(out)/'model.pth')
        if single: values = learn.validate()
    names = ['valid_loss'] + list(learn.metrics.attrgot('name'))
    (Path(out)/f"missing_{'single' if single else 'ddp'}.json").write_text(json.dumps(dict(zip(names, map(float, values)))))

def main(args):
    single = args[0] == '--single'
    if single: args = args[1:]
    if args[0] == '--missing': return validate_missing(Path(args[1]), args[2], single)
    data, out, *weightings = args
    res = {}
    for w in weightings:
        learn = learner(Path(data), w, single)
        with learn.no_bar(), learn.no_logging(), warnings.catch_warnings(), learn.distrib_ctx(sync_bn=False, cpu=True):
            warnings.simplefilter('ignore')
            learn.fit(2, 1e-2)
        res[w] = dict(metrics={k: float(v) for k,v in learn.history.df.iloc[-1].items()}, checksum=checksum(learn))
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out)/f'rank{rank_distrib()}.json').write_text(json.dumps(res))

if __name__ == '__main__': main(sys.argv[1:])
