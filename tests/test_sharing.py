"Soft sharing end to end: every sharing trains the shapes (images) or the penguins (tables) above chance, with gradient weightings, missing labels, fine_tune, export and mixed precision."
import warnings
import numpy as np, pandas as pd, pytest, torch
from conftest import require
import palmerpenguins
from torch import nn
from fastai.vision.all import ConvLayer, set_seed, load_learner, resnet18
from fastai.tabular.all import RandomSplitter
from fastai_mtl.all import Tasks, CategoryTask, RegressionTask, make_shapes, shapes_dataloaders, mtl_learner, mtl_tabular_dataloaders, mtl_tabular_learner
from fastai_mtl.sharing import MMoE, CGC, PLE, CrossStitch, MTAN, MixtureHead, TaskwiseHead

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def tiny_cnn():
    "A small CNN (three stages) cut by fastai at its pooling layer"
    return nn.Sequential(ConvLayer(3, 16, stride=2), nn.Sequential(ConvLayer(16, 32, stride=2), ConvLayer(32, 32)),
                         nn.Sequential(ConvLayer(32, 64, stride=2), ConvLayer(64, 64)), nn.AdaptiveAvgPool2d(1))

def image_tasks(): return Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'))

@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    path = tmp_path_factory.mktemp('shapes32')
    df = make_shapes(path, n=400, img_size=32, missing=0.1, seed=3)
    return path, df

def valid_scores(learn):
    "Accuracy of shape and color and the size MAE on the validation set (labelled items only)"
    preds, targs = learn.get_preds()
    res = {}
    for name, p, t in zip(learn.tasks.names, preds, targs):
        known = ~torch.isnan(t.float()) if t.is_floating_point() else t >= 0
        res[name] = (p.argmax(1)[known] == t[known]).float().mean().item() if p.ndim == 2 else (p[known] - t[known]).abs().mean().item()
    return res

SHARINGS = dict(mmoe=MMoE(n_experts=3, expert_size=32), cgc=CGC(n_shared=2, n_specific=1, expert_size=32),
                ple=PLE(levels=2, n_shared=2, n_specific=1, expert_size=32), cross_stitch=CrossStitch(), mtan=MTAN())

@pytest.mark.parametrize('name', list(SHARINGS))
def test_each_sharing_learns_every_task(shapes, name):
    path, df = shapes
    tasks = image_tasks()
    dls = shapes_dataloaders(path, df, tasks, bs=32)
    set_seed(0, reproducible=True)
    learn = mtl_learner(dls, tiny_cnn(), tasks, pretrained=False, sharing=SHARINGS[name], lin_ftrs=[], ps=0.)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(6, 1e-2)
    s = valid_scores(learn)
    size = df['size'].dropna()
    mean_mae = (size - size.mean()).abs().mean()
    assert s['shape'] > 0.45 and s['color'] > 0.9 and s['size'] < 0.6*mean_mae, (name, s, mean_mae)

@pytest.mark.parametrize('name', ['mmoe', 'mtan', 'cross_stitch'])
def test_gradient_weighting_uses_the_shared_representation(shapes, name):
    "UPGrad weights the tasks at MMoE's experts' input and at MTAN's stages; cross-stitch falls back to the parameters, with a warning"
    require('torchjd')
    path, df = shapes
    tasks = image_tasks()
    dls = shapes_dataloaders(path, df.iloc[:96], tasks, bs=32)
    set_seed(0, reproducible=True)
    learn = mtl_learner(dls, tiny_cnn(), tasks, pretrained=False, sharing=SHARINGS[name], lin_ftrs=[], weighting='upgrad')
    with warnings.catch_warnings(record=True) as w, learn.no_bar(), learn.no_logging():
        warnings.simplefilter('always')
        learn.fit(1, 1e-3)
    fell_back = any('level=' in str(o.message) for o in w)
    wt = learn.loss_func.weighting
    assert fell_back == (name == 'cross_stitch') and wt.at == ('parameter' if name == 'cross_stitch' else 'representation')
    ws = torch.stack(learn.history.weights)
    assert ws.shape == (2, 3) and (ws > 0).all()
    assert not torch.allclose(ws, ws[:, :1].expand_as(ws))

def test_cross_stitch_splits_columns_like_the_body(shapes):
    path, df = shapes
    tasks = image_tasks()
    dls = shapes_dataloaders(path, df.iloc[:64], tasks, bs=32)
    learn = mtl_learner(dls, resnet18, tasks, pretrained=False, sharing=CrossStitch())
    groups = learn.splitter(learn.model)
    test_columns = learn.model[0].columns
    assert len(groups) == 3 and sum(len(g) for g in groups) == len(list(learn.model.parameters()))
    assert test_columns[1][0].weight in set(groups[0]) and learn.model[0].stitches['7'].alpha in set(groups[-1])
    learn.freeze()
    assert not test_columns[2][6][0].conv1.weight.requires_grad and learn.model[0].stitches['4'].alpha.requires_grad

def test_mtan_keeps_fastais_split_and_fine_tunes(shapes, tmp_path):
    path, df = shapes
    tasks = image_tasks()
    dls = shapes_dataloaders(path, df.iloc[:64], tasks, bs=32)
    learn = mtl_learner(dls, resnet18, tasks, pretrained=False, sharing=MTAN(), path=tmp_path)
    groups = learn.splitter(learn.model)
    assert len(groups) == 3 and learn.model[1].attention[0][0][0][0].weight in set(groups[-1])
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, freeze_epochs=1)
    assert repr(learn.model_args['sharing']) == 'MTAN(stages=None)' and len(learn.recorder.values) == 1

def test_export_predict_and_amp(shapes, tmp_path):
    path, df = shapes
    tasks = image_tasks()
    dls = shapes_dataloaders(path, df.iloc[:64], tasks, bs=32)
    learn = mtl_learner(dls, tiny_cnn(), tasks, pretrained=False, sharing=PLE(levels=2, expert_size=16), path=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    learn.export('ple.pkl')
    loaded = load_learner(tmp_path/'ple.pkl')
    img = path/df.fname[0]
    p1, p2 = learn.predict(img), loaded.predict(img)
    assert set(p1) == {'shape', 'color', 'size'} and p1 == p2
    with pytest.raises(ValueError, match='no validation items'): loaded.gate_table()
    gates = loaded.gate_table(loaded.dls.test_dl(df.fname[:8].map(lambda f: path/f).tolist()))
    assert np.allclose(gates.sum(1), 1) and list(gates.index) == [(0, 'shape'), (0, 'color'), (0, 'size'), (0, 'shared'), (1, 'shape'), (1, 'color'), (1, 'size')]
    amp = mtl_learner(dls, tiny_cnn(), tasks, pretrained=False, sharing=MTAN()).to_amp('bf16')
    with amp.no_bar(), amp.no_logging(): amp.fit(1, 1e-3)
    assert all(np.isfinite(v) for v in amp.recorder.values[-1])

PENGUIN_SHARINGS = dict(hard=None, mmoe=MMoE(n_experts=4, expert_size=16), cgc=CGC(expert_size=16), ple=PLE(levels=2, expert_size=16))

@pytest.mark.parametrize('name', list(PENGUIN_SHARINGS))
def test_tables_learn_with_experts(name):
    df = palmerpenguins.load_penguins()
    tasks = Tasks(CategoryTask('species'), CategoryTask('sex'), RegressionTask('body_mass_g'))
    splits = RandomSplitter(seed=1)(df)
    dls = mtl_tabular_dataloaders(df, tasks, cat_names=['island'], cont_names=['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm'], splits=splits, bs=32)
    set_seed(42, reproducible=True)
    learn = mtl_tabular_learner(dls, tasks, sharing=PENGUIN_SHARINGS[name])
    assert (learn.model_args['sharing'] is None) == (name == 'hard') and isinstance(learn.model[1], MixtureHead) == (name != 'hard')
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(20, 1e-2)
    s = valid_scores(learn)
    valid = df.iloc[list(splits[1])]
    mean_mae = (valid.body_mass_g - df.iloc[list(splits[0])].body_mass_g.mean()).abs().mean()
    assert s['species'] > 0.9 and s['sex'] > 0.75 and s['body_mass_g'] < 0.5*mean_mae, (name, s, mean_mae)
    if name != 'hard':
        gates = learn.gate_table()
        assert np.allclose(gates.sum(1), 1)

def test_sharing_refuses_what_it_cannot_share():
    df = palmerpenguins.load_penguins()
    tasks = Tasks(CategoryTask('species'), CategoryTask('sex'))
    dls = mtl_tabular_dataloaders(df, tasks, cat_names=['island'], cont_names=['bill_length_mm'], splits=RandomSplitter(seed=1)(df), bs=32)
    with pytest.raises(ValueError, match='on a table use MMoE'): mtl_tabular_learner(dls, tasks, sharing=MTAN())

def test_save_mtl_keeps_the_sharing(shapes, tmp_path):
    "save_mtl writes the sharing as plain values (no pickled code); load_mtl rebuilds the same model: same predictions"
    from fastai_mtl.serialize import save_mtl, load_mtl
    path, df = shapes
    tasks = image_tasks()
    dls = shapes_dataloaders(path, df.iloc[:64], tasks, bs=32)
    learn = mtl_learner(dls, tiny_cnn(), tasks, pretrained=False, sharing=MTAN())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    save_mtl(learn, tmp_path/'mtan')
    assert '"type": "MTAN"' in (tmp_path/'mtan'/'model.json').read_text()
    loaded = load_mtl(tmp_path/'mtan', arch=tiny_cnn())
    items = df.iloc[:5]
    a, b = learn.predict_df(items, with_probs=True), loaded.predict_df(items, with_probs=True)
    pd.testing.assert_frame_equal(a, b)
    pdf = palmerpenguins.load_penguins()
    ptasks = Tasks(CategoryTask('species'), RegressionTask('body_mass_g'))
    pdls = mtl_tabular_dataloaders(pdf, ptasks, cat_names=['island'], cont_names=['bill_length_mm', 'flipper_length_mm'], splits=RandomSplitter(seed=1)(pdf), bs=32)
    tab = mtl_tabular_learner(pdls, ptasks, sharing=PLE(levels=2, expert_size=8))
    with tab.no_bar(), tab.no_logging(): tab.fit(1, 1e-2)
    save_mtl(tab, tmp_path/'ple')
    rows = pdf.dropna().iloc[:6]
    pd.testing.assert_frame_equal(tab.predict_df(rows), load_mtl(tmp_path/'ple').predict_df(rows))
