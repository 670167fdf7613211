"""Step time of every weighting relative to equal weighting, at T = 2, 3 and 8 tasks, measured side by side.

Same model (resnet18 body, one fastai head per task), same in-memory batches, same fastai training loop;
each method's epoch is timed right after an epoch of equal weighting (pairs, so that a change in machine load
hits both), and each ratio is the median over rounds of (method time / equal time of its pair).
Writes bench/results/weighting.md.

    python bench/weighting.py [--rounds 3] [--batches 6] [--size 64] [--bs 32] [--tasks 2 3 8 40] [--param-tasks 8] [--device cuda] [--fp16]

The parameter-level methods (`graddrop`, `config`) take a Jacobian of every shared parameter, one backward pass per task,
so they are timed up to `--param-tasks` tasks only (at T=8 they already cost 13-20x).
"""
import argparse, warnings, time
from pathlib import Path
import torch, numpy as np
from fastai.vision.all import Learner, DataLoaders, DataLoader, resnet18, set_seed, Adam
from fastai_mtl.all import Tasks, CategoryTask, MultiTaskLoss, WeightingCallback, WithLossParams, get_weighting, WEIGHTINGS, create_mtl_body, create_mtl_model, GradientWeighting
from fastai.learner import trainable_params
from torchjd.aggregation import NashMTL
from common import add_device_args, setup, timed, machine, suffix

warnings.filterwarnings('ignore')
KINDS = dict(static='loss', equal='loss', uncertainty='loss', dwa='loss', rlw='loss', gls='loss', famo='loss',
             metric_inverse='loss', log='loss', gradnorm='gradient norms (representation)', mgda='gradient (representation)', pcgrad='gradient (representation)',
             cagrad='gradient (representation)', imtl_g='gradient (representation)', aligned_mtl='gradient (representation)',
             nash_mtl='gradient (representation)', upgrad='gradient (representation)', dualproj='gradient (representation)',
             graddrop='gradient (parameter)', config='gradient (parameter)')

VARIANTS = {  # not in WEIGHTINGS: a method with other settings, passed as a TorchJD aggregator
    'nash_mtl_every4': lambda n: GradientWeighting(NashMTL(n_tasks=n, update_weights_every=4))}
KINDS['nash_mtl_every4'] = KINDS['nash_mtl']

def make_learner(name, n_tasks, batches, size, bs, device=None, fp16=False):
    tasks = Tasks(*[CategoryTask(f't{i}') for i in range(n_tasks)])
    for t in tasks: t.n_out, t.vocab = 10, list(range(10))
    g = torch.Generator().manual_seed(0)
    items = [(torch.randn(3, size, size, generator=g), *torch.randint(0, 10, (n_tasks,), generator=g)) for _ in range(batches*bs)]
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=False, drop_last=True), DataLoader(items[:2], bs=2), device=device)
    dls.n_inp = 1
    set_seed(0)
    model = create_mtl_model(create_mtl_body(resnet18, pretrained=False), tasks, lin_ftrs=[64])
    loss = MultiTaskLoss(tasks, VARIANTS[name](n_tasks) if name in VARIANTS else get_weighting(name, n_tasks))
    learn = Learner(dls, model, loss_func=loss, splitter=WithLossParams(trainable_params, loss), cbs=WeightingCallback(), opt_func=Adam)
    return learn.to_fp16() if fp16 else learn

def time_epoch(learn, clock=time.perf_counter):
    def epoch():
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return timed(epoch, learn.dls.device or torch.device('cpu'), clock)

def main(rounds, batches, size, bs, task_counts, methods, device=None, fp16=False, param_tasks=8, clock=time.perf_counter):
    rows = []
    for n_tasks in task_counts:
        timed_methods = [m for m in methods if m != 'equal' and (n_tasks <= param_tasks or KINDS.get(m) != 'gradient (parameter)')]
        learners = {m: make_learner(m, n_tasks, batches, size, bs, device, fp16) for m in ['equal'] + timed_methods}
        for l in learners.values(): time_epoch(l)            # warm-up
        ratios = {m: [] for m in learners}
        for r in range(rounds):
            for m,l in learners.items():
                base = time_epoch(learners['equal'], clock)
                ratios[m].append(time_epoch(l, clock)/base)
        for m in learners: rows.append((m, KINDS.get(m, '?'), n_tasks, float(np.median(ratios[m]))))
        print(f'T={n_tasks}: ' + ', '.join(f'{m} {np.median(v):.2f}x' for m,v in ratios.items()), flush=True)
    return rows

DEFAULT_METHODS = [m for m in WEIGHTINGS if m not in ('uw', 'dbmtl')]   # uw and dbmtl are other names of uncertainty and log
CLOCKS = dict(cpu="this process's CPU time", wall='wall time')

def write(rows, args, out, device):
    ts = sorted({r[2] for r in rows})
    methods = list(dict.fromkeys(r[0] for r in rows))
    table = {(m, t): ratio for m,_,t,ratio in rows}
    kind = {m: k for m,k,_,_ in rows}
    lines = [f'# Weighting cost: step time relative to equal weighting',
             '', f'resnet18 body, {args.size} px, batch {args.bs}, one epoch of {args.batches} batches per timing, each paired with an epoch of equal weighting; median of {args.rounds} rounds of {CLOCKS[args.clock]}; '
             + machine(device, args),
             f'Command: `python bench/weighting.py --rounds {args.rounds} --batches {args.batches} --size {args.size} --bs {args.bs} --tasks {" ".join(map(str, args.tasks))} --param-tasks {args.param_tasks} --clock {args.clock}'
             + (f' --methods {" ".join(args.methods)}' if args.methods != DEFAULT_METHODS else '')
             + (f' --device {args.device}' if args.device != 'cpu' else '') + (' --fp16' if args.fp16 else '') + '`', '',
             '| method | kind | ' + ' | '.join(f'T={t}' for t in ts) + ' |', '|---|---|' + '---|'*len(ts)]
    lines += [f'| {m} | {kind[m]} | ' + ' | '.join(f'{table[(m, t)]:.2f}x' if (m, t) in table else '-' for t in ts) + ' |' for m in methods]
    if any((m, t) not in table for m in methods for t in ts):
        lines += ['', f'-: not timed (parameter-level methods above {args.param_tasks} tasks: one backward pass per task through the whole body).']
    out.write_text('\n'.join(lines) + '\n')
    print(out.read_text())

if __name__ == '__main__':
    p = add_device_args(argparse.ArgumentParser(description=__doc__.split('\n')[0]), threads=torch.get_num_threads())
    p.add_argument('--rounds', type=int, default=3); p.add_argument('--batches', type=int, default=3)
    p.add_argument('--size', type=int, default=64); p.add_argument('--bs', type=int, default=32)
    p.add_argument('--tasks', type=int, nargs='+', default=[2, 3, 8, 40])
    p.add_argument('--param-tasks', type=int, default=8, help='time the parameter-level methods up to this many tasks')
    p.add_argument('--clock', default='wall', choices=['cpu', 'wall'], help="'cpu': this process's CPU time (steady on a shared CPU where wall time includes the wait for a core; one torch thread); 'wall': elapsed time (a GPU)")
    p.add_argument('--methods', nargs='+', default=DEFAULT_METHODS, help=f"names in WEIGHTINGS or {list(VARIANTS)}")
    p.add_argument('--out', default=None, help='bench/results/weighting.md (weighting_cuda[_fp16].md on a GPU) by default')
    args = p.parse_args()
    device = setup(args)
    out = Path(args.out or Path(__file__).parent/'results'/f'weighting{suffix(args)}.md')
    write(main(args.rounds, args.batches, args.size, args.bs, args.tasks, args.methods, device, args.fp16, args.param_tasks,
                     time.process_time if args.clock == 'cpu' else time.perf_counter), args, out, device)
