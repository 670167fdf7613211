"""Train `mtl_unet_learner` distributed (`torchrun --nproc_per_node 2 ddp_unet.py OUT w1 w2 ...`) inside `learn.distrib_ctx()` on
the CPU with gloo. Each process writes `OUT/rank{r}.json`: per weighting, the validation losses per epoch and a checksum of the
model's parameters (which DDP keeps equal across processes; batch-norm statistics are per process without SyncBatchNorm)."""
import sys, json, warnings
from pathlib import Path
from fastai.vision.all import set_seed, rank_distrib
from fastai.distributed import *
from fastai_mtl.all import mtl_unet_learner
from unet_data import rectangles, rect_tasks, rect_dls, tiny_encoder

def main(out, *weightings):
    res = {}
    for w in weightings:
        tasks = rect_tasks()
        dls = rect_dls(tasks, rectangles(64, seed=0), bs=8)
        set_seed(0)
        learn = mtl_unet_learner(dls, tiny_encoder(), tasks, pretrained=False, weighting=w, lin_ftrs=[32])
        with learn.no_bar(), learn.no_logging(), warnings.catch_warnings(), learn.distrib_ctx(sync_bn=False, cpu=True):
            warnings.simplefilter('ignore')
            learn.fit_one_cycle(3, 1e-2)
        res[w] = dict(valid_loss=list(map(float, learn.history.df['valid_loss'])),
                      checksum=[sum(p.detach().double().sum().item() for p in learn.model.parameters()),
                                sum(p.detach().double().pow(2).sum().item() for p in learn.model.parameters())])
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out)/f'rank{rank_distrib()}.json').write_text(json.dumps(res))

if __name__ == '__main__': main(*sys.argv[1:])
