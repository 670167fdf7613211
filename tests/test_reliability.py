"Mixed precision on the CPU, checkpoint and resume, weights-only loading, save_mtl/load_mtl, determinism."
import warnings
from unittest import mock
import pytest, torch, numpy as np
from conftest import require
from torch import nn
from fastai.vision.all import ConvLayer, set_seed, SaveModelCallback
from fastai_mtl.all import (make_shapes, shapes_dataloaders, mtl_learner, mtl_tabular_dataloaders, mtl_tabular_learner, save_mtl,
                            load_mtl, SeedEachEpoch, Tasks, CategoryTask, RegressionTask, MultiCategoryTask)

@pytest.fixture(scope='module')
def tiny_shapes(tmp_path_factory):
    path = tmp_path_factory.mktemp('shapes32')
    return path, make_shapes(path, n=96, img_size=32, seed=4)

def _learner(tiny_shapes, weighting=None, **kwargs):
    path, df = tiny_shapes
    tasks = Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks'))
    set_seed(42, reproducible=True)   # Before the DataLoaders: they draw their shuffling seed from Python's generator
    dls = shapes_dataloaders(path, df, tasks, bs=16, num_workers=0)
    body = nn.Sequential(ConvLayer(3, 8, stride=2), ConvLayer(8, 16, stride=2), nn.AdaptiveAvgPool2d(1))
    return mtl_learner(dls, body, tasks, pretrained=False, weighting=weighting, lin_ftrs=[], **kwargs)

def _fit(learn, *args, **kwargs):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit_one_cycle(*args, **kwargs)
    return learn.history.df

@pytest.mark.parametrize('mode,weighting', [('bf16', 'upgrad'), ('fp16', 'upgrad'), ('bf16', 'uncertainty'), ('fp16', 'config'), ('fp16', 'gradnorm')])
def test_cpu_autocast(tiny_shapes, mode, weighting):
    learn = _learner(tiny_shapes, weighting).to_amp(mode)
    seen = []
    learn.model[0].register_forward_hook(lambda m,i,o: seen.append(o.dtype))
    df = _fit(learn, 1, 1e-2)
    assert seen[0] == (torch.bfloat16 if mode == 'bf16' else torch.float16)
    assert np.isfinite(df.drop(columns=['fit', 'epoch']).values.astype(float)).all(), df
    if mode == 'fp16': assert learn.loss_func.weighting.grad_scale >= 2.   # the GradScaler's scale (65536, halved on overflows) reached the weighting

@pytest.mark.parametrize('weighting', ['static', 'uncertainty', 'dwa', 'famo', 'metric_inverse', 'gradnorm'])
def test_resume_equals_uninterrupted(tiny_shapes, tmp_path, weighting):
    learn = _learner(tiny_shapes, weighting, path=tmp_path)
    full = _fit(learn, 3, 1e-2, cbs=[SeedEachEpoch(7), SaveModelCallback(monitor='shape_accuracy', every_epoch=True, with_opt=True)])
    assert sorted(o.name for o in (tmp_path/'models').iterdir()) == ['model_0.pth', 'model_1.pth', 'model_2.pth']
    resumed = _learner(tiny_shapes, weighting, path=tmp_path)
    resumed.load('model_0')
    part = _fit(resumed, 3, 1e-2, start_epoch=1, cbs=SeedEachEpoch(7))
    exact = ['fit', 'epoch', 'train_loss']   # train_loss is fastai's smoothed loss, which restarts with each fit
    assert part.drop(columns=exact).iloc[-1].equals(full.drop(columns=exact).iloc[-1]), (part, full)
    for p,q in zip(list(learn.model.parameters()) + list(learn.loss_func.parameters()),
                   list(resumed.model.parameters()) + list(resumed.loss_func.parameters())): assert torch.equal(p, q)

def test_save_model_callback_keeps_best_task_metric(tiny_shapes, tmp_path):
    learn = _learner(tiny_shapes, path=tmp_path)
    df = _fit(learn, 3, 1e-2, cbs=SaveModelCallback(monitor='color_accuracy', fname='best'))
    best = df['color_accuracy'].max()
    learn.load('best')
    assert learn.validate()[learn.recorder.metric_names[1:-1].index('color_accuracy') - 1] == pytest.approx(best)

def test_load_is_weights_only(tiny_shapes, tmp_path):
    learn = _learner(tiny_shapes, 'uncertainty', path=tmp_path)
    _fit(learn, 1, 1e-2)
    learn.save('ckpt')
    with mock.patch('torch.load', wraps=torch.load) as load:
        other = _learner(tiny_shapes, 'uncertainty', path=tmp_path).load('ckpt')
    assert load.call_args.kwargs['weights_only'] is True
    assert torch.equal(other.loss_func.weighting.log_vars, learn.loss_func.weighting.log_vars)
    class Payload:
        def __reduce__(self): return (print, ('pwned',))
    torch.save(dict(model=learn.model.state_dict(), loss={'weighting.log_vars': Payload()}), tmp_path/'models'/'bad.pth')
    with pytest.raises(Exception, match='Weights only load failed'): other.load('bad')

def test_save_mtl_image_round_trip(tiny_shapes, tmp_path):
    path, df = tiny_shapes
    learn = _learner(tiny_shapes, 'upgrad')
    _fit(learn, 1, 1e-2)
    with pytest.raises(ValueError, match='pass a new one'): load_mtl(save_mtl(learn, tmp_path/'m'))
    body = nn.Sequential(ConvLayer(3, 8, stride=2), ConvLayer(8, 16, stride=2), nn.AdaptiveAvgPool2d(1))
    with mock.patch('torch.load', wraps=torch.load) as load: loaded = load_mtl(tmp_path/'m', arch=body, pref=path)
    assert all(c.kwargs.get('weights_only') is True for c in load.call_args_list)
    assert len(loaded.dls.train_ds) == 0
    files = [path/f for f in df.fname[:12]]
    assert loaded.predict_df(files, with_probs=True).equals(learn.predict_df(files, with_probs=True))
    assert loaded.predict(df.iloc[0]) == learn.predict(df.iloc[0])
    assert torch.equal(loaded.predict(files[1]).probs['marks'], learn.predict(files[1]).probs['marks'])

def test_save_mtl_tabular_round_trip(tmp_path):
    palmerpenguins = require('palmerpenguins')
    df = palmerpenguins.load_penguins()
    tasks = Tasks(CategoryTask('species'), CategoryTask('sex'), RegressionTask('body_mass_g'))
    dls = mtl_tabular_dataloaders(df, tasks, cat_names=['island'], cont_names=['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm'], seed=0)
    learn = mtl_tabular_learner(dls, tasks, layers=[16])
    _fit(learn, 1, 1e-2)
    loaded = load_mtl(save_mtl(learn, tmp_path/'t'))
    assert loaded.predict_df(df, with_probs=True).equals(learn.predict_df(df, with_probs=True))   # rows with missing inputs included
    assert loaded.predict(df.iloc[3]) == learn.predict(df.iloc[3])

@pytest.mark.parametrize('weighting', ['static', 'dwa', 'upgrad'])
def test_same_seed_same_metrics(tiny_shapes, weighting):
    a,b = (_fit(_learner(tiny_shapes, weighting), 2, 1e-2) for _ in range(2))
    assert a.equals(b), (a, b)
