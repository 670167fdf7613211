"mtl_unet_learner: every weighting trains the mask above the trivial predictor; any input size; timm encoders; export; mixed precision; DDP."
import json, os, socket, subprocess, sys, time, warnings
from pathlib import Path
import pytest, torch, numpy as np
from fastai.vision.all import set_seed, load_learner, resnet18
from fastai_mtl.all import mtl_unet_learner, WEIGHTINGS
from unet_data import rectangles, rect_tasks, rect_dls, tiny_encoder, trivial_pixel_accuracy, pixel_accuracy

@pytest.fixture(scope='module')
def rects(): return rectangles(96, seed=0)

def _learner(df, weighting=None, size=None, **kwargs):
    tasks = rect_tasks()
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

def test_timm_encoder(rects):
    pytest.importorskip('timm')
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

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def test_ddp_gloo_two_processes(tmp_path):
    pytest.importorskip('accelerate')
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join([str(Path(__file__).parent), os.environ.get('PYTHONPATH', '')])}
    ddp = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
                          '--master_port', str(_free_port()), str(Path(__file__).parent/'ddp_unet.py'), str(tmp_path), 'equal', 'upgrad'],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    r0,r1 = (json.loads((tmp_path/f'rank{r}.json').read_text()) for r in (0, 1))
    for w in ('equal', 'upgrad'):
        assert r0[w]['checksum'] == r1[w]['checksum'], f"{w}: the processes' parameters differ"
        assert r0[w]['valid_loss'][-1] < r0[w]['valid_loss'][0], (w, r0[w])
