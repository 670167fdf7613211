"End to end: `mtl_learner` + `fine_tune` on the generated shapes dataset, from scratch."
import subprocess, sys
import pytest
from conftest import require
import numpy as np, torch
from torch import nn
from fastai.vision.all import resnet18, set_seed
from fastai_mtl.all import mtl_learner, make_shapes, shapes_dataloaders
from conftest import shape_tasks

def _learner(shapes, arch, **kwargs):
    path, df = shapes
    tasks = shape_tasks()
    set_seed(42, reproducible=True)
    return mtl_learner(shapes_dataloaders(path, df, tasks, bs=32), arch, tasks, pretrained=False, lin_ftrs=[64], **kwargs)

def _mean_predictor_mae(learn):
    "MAE on the validation set of always predicting the training mean size"
    return (learn.dls.valid_ds.items['size'] - learn.dls.train_ds.items['size'].mean()).abs().mean()

def test_fine_tune_learns_every_task(shapes):
    learn = _learner(shapes, resnet18)
    with learn.no_bar(): learn.fine_tune(7, 1e-2, freeze_epochs=1)
    final = learn.history.df.iloc[-1]
    assert final['shape_accuracy'] > 0.5, final          # chance: 1/3
    assert final['color_accuracy'] > 0.8, final          # chance: 1/3
    assert final['marks_accuracy_multi'] > 0.8, final    # each mark is present half of the time
    assert final['size_mae'] < 0.75*_mean_predictor_mae(learn), final
    lrs = [h['lr'] for h in learn.opt.hypers]
    assert len(learn.opt.hypers) >= 2 and len(set(lrs)) >= 2, lrs   # discriminative learning rates after unfreezing
    assert learn.history.df['fit'].tolist() == [1] + [2]*7

def _is_bn(name, model): return isinstance(model.get_submodule(name.rsplit('.', 1)[0]), nn.modules.batchnorm._BatchNorm)

def test_frozen_phase_trains_heads_only(shapes):
    learn = _learner(shapes, resnet18)
    learn.freeze()
    body0 = {n: p.detach().clone() for n,p in learn.model[0].named_parameters() if not _is_bn(n, learn.model[0])}
    heads0 = {n: p.detach().clone() for n,p in learn.model[1].named_parameters()}
    with learn.no_bar(): learn.fit_one_cycle(1, 1e-2)
    body1, heads1 = dict(learn.model[0].named_parameters()), dict(learn.model[1].named_parameters())
    assert all(torch.equal(p, body1[n]) for n,p in body0.items()), "body (non-BatchNorm) weights changed while frozen"
    changed = [n for n,p in heads0.items() if not torch.equal(p, heads1[n])]
    assert {n.split('.')[1] for n in changed} == {'shape', 'color', 'size', 'marks'}, changed

def test_lr_find(shapes):
    learn = _learner(shapes, resnet18)
    with learn.no_bar(): res = learn.lr_find(num_it=20, show_plot=False)
    lrs, losses = np.array(learn.recorder.lrs), np.array([float(l) for l in learn.recorder.losses])
    at_valley = losses[np.abs(np.log(lrs/res.valley)).argmin()]
    assert at_valley < losses[0], (res.valley, at_valley, losses[0])   # the suggestion is where the loss went down, not just in lr_find's range
    assert len(learn.recorder.losses) > 5

def test_missing_labels_train_without_nan(tmp_path):
    df = make_shapes(tmp_path, n=160, missing=0.3, seed=3)
    tasks = shape_tasks()
    dls = shapes_dataloaders(tmp_path, df, tasks, bs=16)
    learn = mtl_learner(dls, resnet18, tasks, pretrained=False, lin_ftrs=[32])
    assert '#na#' not in tasks['shape'].vocab and 'nan' not in map(str, tasks['shape'].vocab)
    with learn.no_bar(): learn.fit(1, 1e-3)
    assert np.isfinite(learn.history.df.drop(columns=['fit', 'epoch']).values.astype(float)).all()

def test_export_load_round_trip(shapes, tmp_path):
    learn = _learner(shapes, resnet18, path=tmp_path)
    with learn.no_bar(): learn.fit(1, 1e-3)
    learn.export('model.pkl')
    script = f"""
import torch
from fastai.vision.all import *
learn = load_learner({str(tmp_path/'model.pkl')!r})
print(learn.tasks.names)
"""
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "['shape', 'color', 'size', 'marks']" in out.stdout

def test_timm_body_trains(shapes):
    timm = require('timm')
    from fastai_mtl.all import create_mtl_body
    body = create_mtl_body('resnet10t', pretrained=False)
    assert type(body).__name__ == 'TimmBody'
    learn = _learner(shapes, 'resnet10t')
    with learn.no_bar(): learn.fit_one_cycle(2, 1e-2)
    final = learn.history.df.iloc[-1]
    assert final['color_accuracy'] > 0.5, final     # chance: 1/3

def test_split_at_copies_and_trains(shapes):
    learn = _learner(shapes, resnet18, split_at='layer4')
    heads = learn.model[1].heads
    assert len({id(h[0][0][0].conv1.weight) for h in heads.values()}) == 4     # one layer4 copy per task
    learn.freeze()
    shared0 = learn.model[0][0].weight.detach().clone()
    with learn.no_bar(): learn.fit_one_cycle(2, 1e-2)
    assert torch.equal(shared0, learn.model[0][0].weight)
    assert learn.history.df.iloc[-1]['color_accuracy'] > 0.5
