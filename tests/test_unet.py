"mtl_unet_learner: every weighting trains the mask above the trivial predictor; any input size; timm encoders; export; mixed precision; DDP."
import json, os, subprocess, sys, time, warnings
from pathlib import Path
import pytest, torch, numpy as np
from conftest import require, free_port
from fastai.vision.all import set_seed, load_learner, DataBlock, ImageBlock, ColReader, RandomSplitter
from fastai_mtl.all import (MTLInterpretation, mtl_unet_learner, WEIGHTINGS, make_scenes, SCENE_CODES, Tasks, SegmentationTask, DepthTask, NormalsTask,
                            CategoryTask)
from unet_data import rectangles, rect_tasks, rect_dls, tiny_encoder, trivial_pixel_accuracy, pixel_accuracy

@pytest.fixture(scope='module')
def rects(): return rectangles(96, seed=0)

def _learner(df, weighting=None, size=None, **kwargs):
    tasks = rect_tasks()
    set_seed(0, reproducible=True)   # Before the DataLoaders: they draw their shuffling seed from Python's generator
    dls = rect_dls(tasks, df)
    set_seed(0, reproducible=True)
    return mtl_unet_learner(dls, tiny_encoder(), tasks, pretrained=False, weighting=weighting, lin_ftrs=[32], **kwargs)

def _fit(learn, *args, fn='fit_one_cycle'):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        getattr(learn, fn)(*args)

@pytest.mark.parametrize('name', [n for n in WEIGHTINGS if n not in ('uw', 'dbmtl')])   # aliases of 'uncertainty' and 'log'
def test_every_weighting_trains_the_mask(rects, name):
    learn = _learner(rects, name)
    _fit(learn, 6, 1e-2)
    preds,targs = learn.get_preds()
    acc,base = pixel_accuracy(preds[0], targs[0]),trivial_pixel_accuracy(rects)
    assert acc > base + 0.03, (name, acc, base)
    assert np.isfinite(learn.history.df.drop(columns=['fit', 'epoch']).values.astype(float)).all()

@pytest.mark.parametrize('decoders', ['shared', 'separate'])
@pytest.mark.parametrize('size', [(40, 56), (48, 32)])
def test_outputs_at_the_input_size(size, decoders):
    "Non-square inputs, sizes not multiples of 32, and predictions at a size other than the training one"
    df = rectangles(32, size=size, seed=1)
    learn = _learner(df, decoders=decoders)
    _fit(learn, 1, 1e-3, fn='fit')
    preds,targs = learn.get_preds()
    assert preds[0].shape == (len(targs[0]), 3, *size) and preds[1].shape == (len(targs[0]), 2)
    other = learn.model.eval()(torch.randn(2, 3, 33, 45))
    assert [tuple(o.shape) for o in other] == [(2, 3, 33, 45), (2, 2)]

@pytest.mark.parametrize('decoders', ['shared', 'separate'])
def test_scenes_segmentation_depth_normals_and_a_label(tmp_path, decoders):
    "The generated scenes: every kind of dense task beside an image-level one, each output at the image's size, every metric finite"
    df = make_scenes(tmp_path, n=24, img_size=32, seed=0)
    reader = lambda col: ColReader(col, pref=tmp_path)
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES, getter=reader('seg')), DepthTask('depth', getter=reader('depth')),
                  NormalsTask('normals', getter=reader('normals')), CategoryTask('scene'))
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=reader('image'), get_y=tasks.getters, splitter=RandomSplitter(seed=0))
    dls = dblock.dataloaders(df, bs=8, num_workers=0)
    set_seed(0)
    learn = mtl_unet_learner(dls, tiny_encoder(), tasks, pretrained=False, decoders=decoders, weighting='upgrad')
    assert len(learn.model[1].decoders) == (1 if decoders == 'shared' else 3)
    _fit(learn, 1, 1e-3, fn='fit')
    preds,targs = learn.get_preds()
    n = len(targs[0])
    assert [tuple(p.shape) for p in preds] == [(n, 6, 32, 32), (n, 1, 32, 32), (n, 3, 32, 32), (n, tasks['scene'].n_out)]
    row = learn.history.df.iloc[-1]
    assert {'seg_miou', 'depth_abs_err', 'normals_mean_angle', 'scene_accuracy'} <= set(row.index), list(row.index)
    assert np.isfinite(row.drop(['fit', 'epoch']).values.astype(float)).all(), row
    interp = MTLInterpretation.from_learner(learn)
    tab = interp.iou_table('seg')                                 # per class, over the validation set's labelled pixels
    assert list(tab.index) == list(SCENE_CODES) and tab.pixels.sum() == (targs[0] >= 0).sum()
    assert abs(tab.attrs['miou'] - row['seg_miou']) < 1e-6         # the recorder's mIoU, from the same confusion matrix
    losses,idx = interp.top_losses(3, task='depth')
    assert len(idx) == 3 and (losses[:-1] >= losses[1:]).all()

def test_timm_encoder(rects):
    require('timm')
    tasks = rect_tasks()
    dls = rect_dls(tasks, rects)
    learn = mtl_unet_learner(dls, 'resnet18', tasks, pretrained=False, decoders='separate')
    assert len(learn.model[1].hooks) == 4
    outs = learn.model.eval()(torch.randn(2, 3, 40, 56))
    assert [tuple(o.shape) for o in outs] == [(2, 3, 40, 56), (2, 2)]

def test_export_and_load_learner_bit_identical(rects, tmp_path):
    learn = _learner(rects, 'upgrad')
    _fit(learn, 1, 1e-2)
    preds,_ = learn.get_preds()
    learn.export(tmp_path/'unet.pkl')
    loaded = load_learner(tmp_path/'unet.pkl')
    dl = loaded.dls.test_dl(rects[rects.is_valid])
    again,_ = loaded.get_preds(dl=dl)
    for a,b in zip(preds, again): assert torch.equal(a, b)

def test_to_amp_bf16(rects):
    learn = _learner(rects, 'upgrad').to_amp('bf16')
    _fit(learn, 2, 1e-2)
    assert learn.model[0][0][0].weight.dtype == torch.float32
    assert np.isfinite(learn.history.df.drop(columns=['fit', 'epoch']).values.astype(float)).all()
    assert learn.history.df['valid_loss'].iloc[-1] < learn.history.df['valid_loss'].iloc[0]

def test_ddp_gloo_two_processes(tmp_path):
    require('accelerate')
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join([str(Path(__file__).parent), os.environ.get('PYTHONPATH', '')])}
    ddp = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
                          '--master_port', str(free_port()), str(Path(__file__).parent/'ddp_unet.py'), str(tmp_path), 'equal', 'upgrad'],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    r0,r1 = (json.loads((tmp_path/f'rank{r}.json').read_text()) for r in (0, 1))
    for w in ('equal', 'upgrad'):
        assert r0[w]['checksum'] == r1[w]['checksum'], f"{w}: the processes' parameters differ"
        assert r0[w]['valid_loss'][-1] < r0[w]['valid_loss'][0], (w, r0[w])

def test_unweighted_heads_replace_the_gradient_of_every_shared_feature(rects):
    "heads='unweighted': the aggregated gradient replaces the one reaching each shared feature (encoder output and skips)"
    from torchjd.aggregation import UPGrad
    from fastai_mtl.all import GradientWeighting
    learn = _learner(rects, GradientWeighting(UPGrad(), heads='unweighted'))
    _fit(learn, 6, 1e-2)
    preds,targs = learn.get_preds()
    assert pixel_accuracy(preds[0], targs[0]) > trivial_pixel_accuracy(rects) + 0.03

def test_predict_dense_at_the_items_size():
    "Trained on 40x56 images resized to 32x32: `predict` gives the mask at 40x56 with the codes, `predict_df` at the batch's size"
    from fastai.vision.all import Resize
    df = rectangles(64, size=(40, 56), seed=2)
    tasks = rect_tasks()
    dls = rect_dls(tasks, df, item_tfms=Resize(32))
    set_seed(0)
    learn = mtl_unet_learner(dls, tiny_encoder(), tasks, pretrained=False, lin_ftrs=[32])
    _fit(learn, 6, 1e-2)
    row = df[df.is_valid].iloc[0]
    pred = learn.predict(row)
    mask = pred['seg']
    assert tuple(mask.shape) == (40, 56) and list(mask.codes) == ['background', 'red', 'green']
    assert pred['color'] in ('red', 'green')
    probs = pred.probs['seg']
    assert tuple(probs.shape) == (3, 40, 56) and torch.allclose(probs.sum(0), torch.ones(40, 56))
    assert torch.equal(mask, probs.argmax(0))
    assert (mask == torch.from_numpy(row.seg)).float().mean() > 0.8
    assert 'seg: TensorSegMask of shape (40, 56)' in repr(pred)
    out = learn.predict_df(df[df.is_valid])
    assert list(out.columns) == ['seg', 'color'] and tuple(out.seg.iloc[0].shape) == (32, 32)
    assert list(learn.predict_df(df[df.is_valid], with_probs=True).columns) == ['seg', 'color', 'color_prob_green', 'color_prob_red']

def test_save_mtl_load_mtl_rebuilds_a_unet_bit_for_bit(tmp_path):
    "Scenes with every dense task kind and an image-level one, separate decoders: JSON + weights give the same predictions"
    from fastai_mtl.all import save_mtl, load_mtl
    data = tmp_path/'scenes'
    df = make_scenes(data, n=16, img_size=32, seed=1)
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES), DepthTask('depth'), NormalsTask('normals'), CategoryTask('scene'))
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('image', pref=data),
                       get_y=[ColReader(c, pref=data) for c in ('seg', 'depth', 'normals')] + [ColReader('scene')], splitter=RandomSplitter(seed=0))
    dls = dblock.dataloaders(df, bs=8, num_workers=0)
    set_seed(0)
    learn = mtl_unet_learner(dls, tiny_encoder(), tasks, pretrained=False, decoders='separate', bottle=True)
    _fit(learn, 1, 1e-3, fn='fit')
    with pytest.raises(ValueError, match="pass a new one as `load_mtl"): load_mtl(save_mtl(learn, tmp_path/'m'))
    loaded = load_mtl(tmp_path/'m', arch=tiny_encoder(), pref=data)
    items = df.iloc[:4]
    want,got = learn.get_preds(dl=learn.dls.test_dl(items)),loaded.get_preds(dl=loaded.dls.test_dl(items))
    for a,b in zip(want[0], got[0]): assert torch.equal(a, b)
    p,q = learn.predict(items.iloc[0]),loaded.predict(items.iloc[0])
    assert all(torch.equal(p[k], q[k]) if isinstance(p[k], torch.Tensor) else p[k] == q[k] for k in p)

@pytest.mark.parametrize('decoders', ['shared', 'separate'])
def test_mtan_unet_with_a_gradient_weighting_export_and_save_mtl(rects, tmp_path, decoders):
    "sharing=MTAN() on a U-Net: UPGrad at the encoder's features trains the mask; export, save_mtl/load_mtl and bf16 keep working"
    from fastai_mtl.all import MTAN, save_mtl, load_mtl
    learn = _learner(rects, 'upgrad', sharing=MTAN(), decoders=decoders, path=tmp_path)
    assert len(learn.model[1].decoders) == 1 and type(learn.model[1]).__name__ == 'MTANUnetHead'   # one dense task either way
    _fit(learn, 6, 1e-2)
    preds,targs = learn.get_preds()
    assert pixel_accuracy(preds[0], targs[0]) > trivial_pixel_accuracy(rects) + 0.03
    assert learn.loss_func.weighting.at == 'representation'
    learn.export(tmp_path/'mtan.pkl')
    loaded = load_learner(tmp_path/'mtan.pkl')
    again,_ = loaded.get_preds(dl=loaded.dls.test_dl(rects[rects.is_valid]))
    for a,b in zip(preds, again): assert torch.equal(a, b)
    rebuilt = load_mtl(save_mtl(learn, tmp_path/'m'), arch=tiny_encoder())
    assert type(rebuilt.model[1]).__name__ == 'MTANUnetHead'
    for a,b in zip(preds, rebuilt.get_preds(dl=rebuilt.dls.test_dl(rects[rects.is_valid]))[0]): assert torch.equal(a, b)
    row = rects[rects.is_valid].iloc[0]
    assert rebuilt.predict(row)['color'] == learn.predict(row)['color']
    amp = _learner(rects, 'upgrad', sharing=MTAN(), decoders=decoders).to_amp('bf16')
    _fit(amp, 1, 1e-2)
    assert np.isfinite(amp.history.df.drop(columns=['fit', 'epoch']).values.astype(float)).all()
