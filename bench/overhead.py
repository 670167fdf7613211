"""Framework overhead: `mtl_learner(...).fit` against a hand-written PyTorch loop on the same model and data.

For each model, three loops train copies of the same initial model on the same in-memory batches (one
`DataLoader` whose batches are slices of tensors encoded once, so the data costs the same and little) for one
epoch, then compute each task's loss and accuracy on the same validation set:
- `fastai`: `mtl_learner(...).fit(1)`, with fastai's default optimiser (its own Adam);
- `fastai + torch AdamW`: the same with `opt_func=partial(OptimWrapper, opt=torch.optim.AdamW)`;
- `hand-written`: `for x, *ys in dl: loss = sum(cross_entropy(o, y) ...); loss.backward(); opt.step()` with
  `torch.optim.AdamW` (same hyper-parameters as fastai's Adam: betas (0.9, 0.99), eps 1e-5, weight decay 0.01).
The three run in turn in every round (order alternating); a ratio is the median over rounds of the per-round
ratio to the hand-written loop. Peak memory: the extra resident memory of a first epoch in a fresh process
(CPU), or the CUDA allocator's peak (GPU). Page faults and system CPU time of one more epoch of each loop show
how often memory went back to the kernel and had to be mapped again. Writes bench/results/overhead.md
(overhead_cuda[_fp16].md on a GPU; `--tag T` appends `_T`).

    python bench/overhead.py [--rounds 5] [--device cuda] [--fp16]
"""
import argparse, time, multiprocessing as mp
from copy import deepcopy
from functools import partial
import numpy as np, pandas as pd, torch
import torch.nn.functional as F
from torch import nn
from fastai.vision.all import (DataBlock, ImageBlock, PILImage, PILImageBW, ColReader, ColSplitter, resnet18, set_seed,
                               OptimWrapper)
from fastai_mtl.all import Tasks, CategoryTask, mtl_learner, MTLLearner, MultiHead, InMemoryDL, lenet_body, lenet_head
from common import add_device_args, setup, paired, median_ratio, peak_memory, page_faults, machine, malloc_settings, md_table, write, image_df

LR = 1e-3
CONFIGS = {  # name: (tasks, image size, channels, items (80% train), batch size)
    'resnet18': (3, 64, 3, 320, 32),
    'MultiLeNet': (2, 28, 1, 6400, 256),
}

def dataloaders(name, device):
    n_tasks, size, channels, n, bs = CONFIGS[name]
    tasks = Tasks(*[CategoryTask(f't{i}') for i in range(n_tasks)])
    dblock = DataBlock(blocks=(ImageBlock(PILImage if channels == 3 else PILImageBW), *tasks.blocks), n_inp=1,
                       get_x=ColReader('image'), get_y=tasks.getters, splitter=ColSplitter('is_valid'))
    return dblock.dataloaders(image_df(n, size, n_tasks, channels=channels), bs=bs, dl_type=InMemoryDL, num_workers=0, device=device), tasks

def fastai_learner(name, dls, tasks, **kwargs):
    "The fastai_mtl learner for config `name`, seeded so that every call builds the same initial model"
    set_seed(0)
    if name == 'resnet18': return mtl_learner(dls, resnet18, tasks, pretrained=False, lin_ftrs=[64], **kwargs)
    tasks.setup(dls)
    return MTLLearner(dls, nn.Sequential(lenet_body(), MultiHead({t.name: lenet_head(t.n_out) for t in tasks})), tasks, **kwargs)

def fastai_epoch(learn):
    with learn.no_bar(), learn.no_logging(): learn.fit(1, LR)

def torch_adamw(params, lr=LR): return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)

def plain(batch):
    "A batch as plain tensors (a PyTorch loop knows nothing of fastai's tensor types)"
    return [t.as_subclass(torch.Tensor) for t in batch]

def hand_epoch(model, opt, dls, scaler, device):
    "One epoch of the usual PyTorch loop, then each task's loss and accuracy on the validation set"
    model.train()
    for x, *ys in map(plain, dls.train):
        with torch.autocast(device.type, enabled=scaler is not None):
            loss = sum(F.cross_entropy(o, y) for o,y in zip(model(x), ys))
        opt.zero_grad()
        if scaler is None: loss.backward(); opt.step()
        else: scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    model.eval(); loss = correct = 0
    with torch.no_grad():
        for x, *ys in map(plain, dls.valid):
            for o,y in zip(model(x), ys): loss += F.cross_entropy(o, y, reduction='sum'); correct += (o.argmax(1) == y).sum()
    return float(loss), int(correct)

def variants(name, device, fp16):
    "The three training loops of config `name`, each a function running one epoch"
    dls, tasks = dataloaders(name, device)
    fa = fastai_learner(name, dls, tasks)
    fw = fastai_learner(name, dls, tasks, opt_func=partial(OptimWrapper, opt=torch_adamw))
    model = deepcopy(fa.model).to(device)
    opt, scaler = torch_adamw(model.parameters()), (torch.amp.GradScaler() if fp16 else None)
    if fp16: fa, fw = fa.to_fp16(), fw.to_fp16()
    return {'fastai': partial(fastai_epoch, fa), 'fastai + torch AdamW': partial(fastai_epoch, fw),
            'hand-written': partial(hand_epoch, model, opt, dls, scaler, device)}

def _peak_in_child(name, variant, device, fp16, q): q.put(peak_memory(variants(name, device, fp16)[variant], device))

def first_epoch_peak(name, variant, device, fp16):
    "Peak extra memory (MiB) of a first epoch: in a fresh forked process on the CPU, in this one on a GPU"
    if device.type == 'cuda': return peak_memory(variants(name, device, fp16)[variant], device)
    ctx = mp.get_context('fork'); q = ctx.Queue()
    p = ctx.Process(target=_peak_in_child, args=(name, variant, device, fp16, q)); p.start()
    res = q.get(); p.join()
    return res

def main(args):
    device = setup(args)
    rows = []
    for name in args.models:
        fs = variants(name, device, args.fp16)
        times = paired(fs, args.rounds, device, clock=time.process_time if args.clock == 'cpu' else time.perf_counter)
        faults = {k: page_faults(f) for k,f in fs.items()}
        mem = {k: np.median([first_epoch_peak(name, k, device, args.fp16) for _ in range(args.mem_repeats)]) for k in fs}
        n_tasks, size, _, n, bs = CONFIGS[name]
        for k in fs:
            rows.append({'model': f'{name}, {n_tasks} tasks, {size} px, batch {bs}', 'loop': k,
                         'epoch (median s)': f'{np.median(times[k]):.2f}',
                         'time / hand-written': f"{median_ratio(times[k], times['hand-written']):.2f}x",
                         'page faults (one epoch)': f'{faults[k][0]:,}', 'system CPU s (one epoch)': f'{faults[k][1]:.2f}',
                         'peak memory (MiB)': f'{mem[k]:.0f}', 'memory / hand-written': f"{mem[k]/mem['hand-written']:.2f}x"})
        print(pd.DataFrame(rows[-3:]).to_string(), flush=True)
    return pd.DataFrame(rows)

def report(df, args, device):
    cmd = ' '.join(filter(None, [malloc_settings(), f"python bench/overhead.py --rounds {args.rounds}"])) + (f" --device {args.device}" if args.device != 'cpu' else '') + (' --fp16' if args.fp16 else '') + \
          (f' --clock {args.clock}' if args.clock != 'wall' else '') + (f' --tag {args.tag}' if args.tag else '')
    items = ', '.join(f"{k}: {int(v[3]*0.8)} training and {int(v[3]*0.2)} validation items" for k,v in CONFIGS.items() if k in args.models)
    return f"""# Framework overhead: `mtl_learner(...).fit` vs a hand-written PyTorch loop{f' ({args.tag})' if args.tag else ''}

Same initial model, same in-memory batches ({items}; batches sliced from tensors encoded once, so the data costs the
same for every loop), one epoch of training plus the validation pass per timing ({'this process' + "'" + 's CPU time' if args.clock == 'cpu' else 'wall time'}); the loops alternate within each of
{args.rounds} rounds and each ratio is the median of the per-round ratios. Peak memory: extra memory of a first epoch
(including the optimiser state), median of {args.mem_repeats} fresh processes on the CPU, CUDA allocator peak on a GPU. Page faults
and system CPU time: one more epoch of each loop, from the process's resource usage.
{machine(device, args)}
Command: `{cmd}`

{md_table(df)}
"""

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]))
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--mem-repeats', type=int, default=3)
    p.add_argument('--clock', default='wall', choices=['cpu', 'wall'], help="'wall': elapsed time; 'cpu': this process's CPU time (steady on a shared CPU, one torch thread)")
    p.add_argument('--models', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    args = p.parse_args()
    df = main(args)
    write('overhead', report(df, args, setup(args)), args)
