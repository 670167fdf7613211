"""How the tasks share: shared-bottom vs MMoE vs PLE on the MMoE paper's synthetic tasks, hard vs soft sharing vs
single-task models on the penguins, and the parameters and step time of every sharing on one body.

- `--part synthetic`: Ma et al. (2018), Section 4: two regression tasks y_k = w_k.x + sum_i sin(a_i w_k.x + b_i) + noise,
  with w_1 = c u_1, w_2 = c (p u_1 + sqrt(1 - p^2) u_2) for orthonormal u_1, u_2, so that the cosine of the two
  tasks' weight vectors is the correlation p. d = 100, c = 1, m = 10, noise sd 0.01, a_i and b_i drawn from N(0, 1)
  (the paper does not give them). The models are the sharing modules' heads (`create_head`) trained by a plain
  Adam loop on in-memory tensors (the fastai loop's per-batch cost would dominate such small MLPs), every seed's model at
  once through `torch.func.vmap` (so that many seeds fit in the time: the paper averages 200 runs). The shared bottom is
  `MMoE(n_experts=1, expert_size=128)` (one expert *is* a shared bottom: same layers, same towers), against MMoE with 8
  experts of 16 units and PLE (2 levels, 4 shared + 2 per task experts of 16 units); same towers (8 units), same
  training. Validation MSE per task after every epoch, averaged over both tasks.
- `--part penguins`: palmerpenguins (species, sex: categories; body mass: regression), hard sharing vs MMoE vs PLE vs
  one single-task model per target, per-task validation metrics.
- `--part cost`: parameters and the median step time of each sharing on resnet18 (32 px, batch 32, three tasks),
  measured side by side in one run (paired rounds, alternating order).

Writes bench/results/sharing.md (synthetic + penguins), sharing.png, sharing_curves.png and sharing_cost.md (each with `--tag`'s suffix).

    python bench/sharing.py --part synthetic [--seeds 3] [--correlations 0.5 0.9 1.0] [--epochs 15] [--n 10000]
    python bench/sharing.py --part penguins [--seeds 3]
    python bench/sharing.py --part cost [--rounds 5]
    python bench/sharing.py --part synthetic --from-csv     # the report again, from the saved runs
"""
import argparse, json, warnings, copy
import numpy as np, pandas as pd, torch
from torch import nn
from torch.func import stack_module_state, functional_call, vmap
from fastai.tabular.all import IndexSplitter, RandomSplitter, set_seed, params, Adam, tuplify
from fastai.vision.all import resnet18
from fastai_mtl.all import Tasks, CategoryTask, RegressionTask, mtl_tabular_dataloaders, mtl_tabular_learner, make_shapes, shapes_dataloaders, mtl_learner
from fastai_mtl.sharing import MMoE, PLE, CGC, CrossStitch, MTAN
from common import add_device_args, setup, paired, machine, md_table, write, suffix, RESULTS

warnings.filterwarnings('ignore')

def synthetic_tasks(p, n, d=100, c=1., m=10, noise=0.01, seed=0):
    "Ma et al.'s two regression tasks on `n` inputs, with weight vectors of cosine `p`"
    rng = np.random.default_rng(seed)
    u1, u2 = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
    w1, w2 = c*u1, c*(p*u1 + np.sqrt(1 - p**2)*u2)
    alphas, betas = rng.normal(size=m), rng.normal(size=m)
    x = rng.normal(size=(n, d))
    df = pd.DataFrame(x, columns=[f'x{i}' for i in range(d)])
    for k,w in (('y1', w1), ('y2', w2)):
        dot = x @ w
        df[k] = dot + np.sin(np.outer(dot, alphas) + betas).sum(1) + rng.normal(scale=noise, size=n)
    return df

SYNTHETIC = {'shared-bottom': MMoE(n_experts=1, expert_size=128), 'MMoE': MMoE(n_experts=8, expert_size=16),
             'PLE': PLE(levels=2, n_shared=4, n_specific=2, expert_size=16)}

def _synthetic_tensors(dfs, device):
    "Inputs (seeds, n, d) and targets (seeds, n, 2) of the data sets `dfs`, one per seed"
    x = torch.stack([torch.tensor(df.filter(like='x').values, dtype=torch.float32) for df in dfs]).to(device)
    return x, torch.stack([torch.tensor(df[['y1', 'y2']].values, dtype=torch.float32) for df in dfs]).to(device)

def fit_synthetic(dfs, sharing, epochs, device, bs=128, lr=1e-3):
    """Validation MSE (mean of both tasks, original units) after each epoch, one list per seed, of `sharing`'s head trained on the
    standardised targets of each data set of `dfs` (seed `i` initialises model `i`). The seeds' models train at once: the same module,
    its parameters stacked over seeds (`torch.func.stack_module_state`) and called through `vmap`; Adam is elementwise, so each model
    trains exactly as alone (a plain Adam loop on in-memory tensors: the fastai loop's per-batch cost would dominate such small MLPs)"""
    x, y = _synthetic_tensors(dfs, device)
    n_valid, seeds = x.shape[1]//6, torch.arange(len(dfs), device=device)[:, None]
    mean, std = y[:, :-n_valid].mean(1, keepdim=True), y[:, :-n_valid].std(1, keepdim=True)
    tasks = Tasks(RegressionTask('y1'), RegressionTask('y2'))
    for t in tasks: t.n_out, t.mean, t.std = 1, 0., 1.
    models = []
    for seed in range(len(dfs)):
        set_seed(seed, reproducible=True)
        models.append(sharing.create_head(x.shape[-1], tasks, lin_ftrs=[8], ps=0., first_bn=False).to(device))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to('meta')
    def predict(x, train=True): return vmap(lambda p,b,x: torch.stack(functional_call(base.train(train), (p, b), (x,)), -1))(params, buffers, x)
    opt = torch.optim.Adam(params.values(), lr=lr)
    xt, yt = x[:, :-n_valid], (y[:, :-n_valid] - mean)/std
    curves = []
    for _ in range(epochs):
        for idx in torch.stack([torch.randperm(xt.shape[1], device=device) for _ in dfs]).split(bs, 1):
            loss = ((predict(xt[seeds, idx]) - yt[seeds, idx])**2).mean(1).sum()   # each model's sum over tasks of the MSE
            opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad(): preds = predict(x[:, -n_valid:], train=False)*std + mean
        curves.append(((preds - y[:, -n_valid:])**2).mean((1, 2)).tolist())
    return np.array(curves).T, sum(p.numel() for p in models[0].parameters())

def synthetic(args, device):
    rows = []
    for p in args.correlations:
        dfs = [synthetic_tasks(p, args.n, seed=seed) for seed in range(args.seeds)]
        for name,sharing in SYNTHETIC.items():
            curves, n_params = fit_synthetic(dfs, sharing, args.epochs, device)
            rows += [dict(correlation=p, seed=seed, model=name, epoch=e+1, mse=mse, params=n_params)
                     for seed,curve in enumerate(curves) for e,mse in enumerate(curve)]
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)

PENGUIN_CATS, PENGUIN_CONTS = ['island'], ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm']
PENGUIN_TARGETS = dict(species=CategoryTask, sex=CategoryTask, body_mass_g=RegressionTask)
PENGUIN_SHARINGS = {'hard sharing': None, 'MMoE': MMoE(n_experts=4, expert_size=32), 'PLE': PLE(levels=2, n_shared=2, n_specific=1, expert_size=32)}

def fit_penguins(df, names, sharing, seed, epochs, device):
    "Validation metric of each task in `names` (accuracy, or MAE in grams) trained together with `sharing`"
    tasks = Tasks(*[PENGUIN_TARGETS[n](n) for n in names])
    dls = mtl_tabular_dataloaders(df, tasks, cat_names=PENGUIN_CATS, cont_names=PENGUIN_CONTS, splits=RandomSplitter(seed=seed)(df), bs=32, device=device)
    set_seed(seed, reproducible=True)
    learn = mtl_tabular_learner(dls, tasks, layers=[64] if sharing is None else None, sharing=sharing)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, 1e-2)
        vals = dict(zip(['valid_loss'] + [m.name for m in learn.metrics], learn.validate())) # Masked per-task metrics; get_preds of a one-task learner is broken
    return {n: vals[f"{n}_{'mae' if PENGUIN_TARGETS[n] is RegressionTask else 'accuracy'}"] for n in names}

def penguins(args, device):
    import palmerpenguins
    df = palmerpenguins.load_penguins()
    rows = []
    for seed in range(args.seeds):
        for name,sharing in PENGUIN_SHARINGS.items():
            rows.append(dict(model=name, seed=seed, **fit_penguins(df, list(PENGUIN_TARGETS), sharing, seed, args.epochs, device)))
        single = {}
        for n in PENGUIN_TARGETS: single.update(fit_penguins(df, [n], None, seed, args.epochs, device))
        rows.append(dict(model='single-task (hard, one model per target)', seed=seed, **single))
        print(rows[-4:], flush=True)
    return pd.DataFrame(rows)

COST_SHARINGS = {'hard sharing (None)': None, 'MMoE(n_experts=4)': MMoE(n_experts=4), 'CGC()': CGC(), 'PLE(levels=2)': PLE(levels=2),
                 'CrossStitch()': CrossStitch(), 'MTAN()': MTAN()}

def cost(args, device):
    path = RESULTS.parent/'.data'/'shapes32'
    df = make_shapes(path, n=64, img_size=32, seed=0)
    tasks = Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'))
    dls = shapes_dataloaders(path, df, tasks, bs=32, device=device)
    batch = dls.one_batch()
    learners = {}
    for name,sharing in COST_SHARINGS.items():
        set_seed(0)
        learners[name] = learn = mtl_learner(dls, resnet18, Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size')),
                                             pretrained=False, sharing=sharing)
        learn.create_opt(); learn.model.train()
    def step(learn):
        def f():
            loss = learn.loss_func(learn.model(batch[0]), *batch[1:])
            loss.backward(); learn.opt.step(); learn.opt.zero_grad()
        return f
    times = paired({n: step(l) for n,l in learners.items()}, args.rounds, device)
    base = np.array(times['hard sharing (None)'])
    rows = [{'sharing': n, 'parameters': f'{sum(p.numel() for p in l.model.parameters())/1e6:.2f} M',
             'head and sharing modules': f'{sum(p.numel() for p in l.model[1].parameters())/1e6:.2f} M',
             'step (ms)': f'{np.median(times[n])*1000:.0f}', 'vs hard sharing': f'{np.median(np.array(times[n])/base):.2f}x'}
            for n,l in learners.items()]
    return pd.DataFrame(rows)

def plot(res, out):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name,d in final(res).groupby('model', sort=False):
        g = d.groupby('correlation')['mse']
        ax.errorbar(g.mean().index, g.mean().values, yerr=g.std().values, marker='o', capsize=3, label=name)
    ax.set_xlabel('task correlation p (cosine of the weight vectors)'); ax.set_ylabel('validation MSE (mean of both tasks)')
    ax.set_title("Ma et al. (2018) synthetic tasks: mean and sd over seeds"); ax.legend()
    fig.tight_layout(); fig.savefig(out, dpi=100)

def geo_curves(res):
    "Geometric mean over seeds of the validation MSE, per model, correlation and epoch"
    return np.exp(np.log(res.mse).groupby([res.model, res.correlation, res.epoch], sort=False).mean())

def plot_curves(res, out):
    "The paper's Figure 4: validation loss over training, one panel per model, one curve per correlation"
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    curves, models = geo_curves(res), list(res.model.unique())
    fig, axs = plt.subplots(1, len(models), figsize=(4*len(models), 3.5), sharey=True)
    for ax,m in zip(axs, models):
        for p,c in curves[m].groupby(level='correlation'): ax.plot(c.index.get_level_values('epoch'), c.values, label=f'p = {p:g}')
        ax.set_yscale('log'); ax.set_title(m); ax.set_xlabel('epoch'); ax.grid(alpha=0.3)
    axs[0].set_ylabel('validation MSE (geometric mean over seeds)'); axs[0].legend()
    fig.tight_layout(); fig.savefig(out, dpi=100)

def final(res): return res[res.epoch == res.epoch.max()]

def over_training(res, models, sfx, n_train, at=(1, 2, 5, 10, 20, 40, 80)):
    "Markdown: the geometric-mean ratio of each model's validation MSE to the shared bottom's, per correlation, at epochs `at`"
    at = [e for e in at if e <= res.epoch.max()]
    if len(at) < 2: return ''
    runs = res[res.epoch.isin(at)].pivot_table(index=['correlation', 'epoch', 'seed'], columns='model', values='mse')
    rows = [{'model / shared-bottom': m, 'correlation': p, **{f'epoch {e}': f'{v:.2f}' for e,v in
             np.exp(np.log(g[m]/g['shared-bottom']).groupby('epoch').mean()).items()}}
            for m in models[1:] for p,g in runs.groupby('correlation')]
    return ("\n\n**Over training** (the paper's Figure 4 plots the loss over training steps): geometric mean over seeds of each "
            "model's validation MSE divided by the shared bottom's of the same seed, after each number of epochs (one epoch: "
            f"{len(range(0, n_train, 128))} steps of batch 128). Below 1: the soft sharing is ahead.\n\n" + md_table(pd.DataFrame(rows)) +
            f"\n\n![](sharing_curves{sfx}.png)")

def main():
    p = add_device_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument('--part', choices=['synthetic', 'penguins', 'cost'], required=True)
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--correlations', type=float, nargs='+', default=[0.5, 0.9, 1.0])
    p.add_argument('--n', type=int, default=12000, help='synthetic rows (1/6 for validation)')
    p.add_argument('--epochs', type=int, default=None, help='20 by default')
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--from-csv', action='store_true', help="rewrite the report from the saved runs (bench/results/sharing_{part}_runs.csv) without training")
    args = p.parse_args()
    device = setup(args)
    if args.part == 'cost':
        write('sharing_cost', f"# Parameters and step time of each sharing\n\nresnet18 (`pretrained=False`), 32 px, batch 32, three tasks "
              f"(shape, color, size), one training step (forward, backward, Adam step), median over {args.rounds} paired rounds.\n"
              f"`python bench/sharing.py --part cost --rounds {args.rounds}`. {machine(device, args)}\n\n{md_table(cost(args, device))}\n", args)
        return
    args.epochs = args.epochs or 20
    runs = RESULTS/f'sharing_{args.part}_runs{suffix(args)}.csv'
    if args.from_csv: res = pd.read_csv(runs)
    else:
        res = synthetic(args, device) if args.part == 'synthetic' else penguins(args, device)
        res.to_csv(runs, index=False)
    if args.part == 'synthetic':
        plot(res, RESULTS/f'sharing{suffix(args)}.png'); plot_curves(res, RESULTS/f'sharing_curves{suffix(args)}.png')
    sections = {}
    md = RESULTS/f'sharing_sections{suffix(args)}.json'
    if md.exists(): sections = json.loads(md.read_text())
    sections[args.part] = report(res, args, device)
    md.write_text(json.dumps(sections))
    write('sharing', '# Soft sharing\n\n' + '\n\n'.join(sections[k] for k in ('synthetic', 'penguins') if k in sections), args)

def report(res, args, device):
    cmd = f"`python bench/sharing.py --part {args.part} --seeds {args.seeds} --epochs {args.epochs}" + \
          (f" --correlations {' '.join(map(str, args.correlations))} --n {args.n}`" if args.part == 'synthetic' else '`')
    if args.part == 'synthetic':
        res, curves = final(res), res
        t = res.groupby(['correlation', 'model'], sort=False)['mse'].agg(['mean', 'std']).unstack('model')
        models = list(SYNTHETIC)
        runs = res.pivot_table(index=['correlation', 'seed'], columns='model', values='mse')
        ratio = lambda m: (runs[m]/runs['shared-bottom']).groupby('correlation')
        table = pd.DataFrame({'correlation': t.index, **{m: [f'{a:.3f} ± {s:.3f}' for a,s in zip(t['mean'][m], t['std'][m])] for m in models},
                              **{f'{m} / shared-bottom, per seed': [' '.join(f'{v:.2f}' for v in r) for _,r in ratio(m)] for m in models[1:]},
                              **{f'{m} / shared-bottom, geometric mean': np.exp(np.log(runs[m]/runs['shared-bottom']).groupby('correlation').mean()).round(2).values
                                 for m in models[1:]}})
        n_params = res.groupby('model', sort=False)['params'].first()
        return (f"## Synthetic tasks of controlled correlation (Ma et al. 2018, Section 4)\n\n{cmd}. {machine(device, args)}\n\n"
                f"Validation MSE (mean of the two tasks, original units) after {args.epochs} epochs, mean ± sd over {args.seeds} seeds (data and initialisation); "
                f"parameters: " + ', '.join(f'{m} {v:,}' for m,v in n_params.items()) + ".\n\n" + md_table(table) + f"\n\n![](sharing{suffix(args)}.png)" +
                over_training(curves, models, suffix(args), args.n - args.n//6))
    metrics = list(PENGUIN_TARGETS)
    g = res.groupby('model', sort=False)[metrics]
    m, s = g.mean(), g.std()
    table = pd.DataFrame({'model': m.index, **{f"{c} ({'MAE g' if c == 'body_mass_g' else 'accuracy'})":
                          [f'{a:.1f} ± {b:.1f}' if c == 'body_mass_g' else f'{a:.3f} ± {b:.3f}' for a,b in zip(m[c], s[c])] for c in metrics}})
    return (f"## Penguins: hard vs soft sharing vs single-task models\n\n{cmd}. {machine(device, args)}\n\n"
            f"palmerpenguins, inputs island and the three bill/flipper measures; validation split of 20% drawn with each seed, "
            f"mean ± sd over {args.seeds} seeds; hard sharing and single-task models: one shared layer of 64; MMoE 4 experts of 32; "
            f"PLE 2 levels of 2 shared + 1 per task experts of 32.\n\n" + md_table(table))

if __name__ == '__main__': main()
