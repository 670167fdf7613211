"""The torch-free predictor in a fresh process where `import torch` and `import fastai` fail: its answers are `learn.predict`'s."""
import json, math, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest
from fastai.vision.all import DataBlock, ImageBlock, ColReader, RandomSplitter, Resize, Normalize, aug_transforms, imagenet_stats, resnet18, set_seed
from unet_data import tiny_encoder
import palmerpenguins
from fastai_mtl.all import *

root = Path(__file__).resolve().parent.parent

BLOCKER = '''
import sys
class NoTorch:
    "Refuse torch and fastai, as in an environment where they are not installed"
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'fastai', 'fastcore', 'torchvision'): raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, NoTorch())
'''

PREDICT = BLOCKER + '''
import json, math, pickle
try: import torch
except ImportError: pass
else: raise SystemExit('torch was importable')
from fastai_mtl.onnx import OnnxPredictor
model, items = sys.argv[1], json.loads(sys.argv[2])
p = OnnxPredictor(model)
def plain(v): return v.tolist() if hasattr(v, 'tolist') else list(v) if isinstance(v, tuple) else v
out = [dict(preds={k: plain(v) for k,v in r.items()}, probs={k: r.probs[k].tolist() for k in r},
            codes={k: getattr(v, 'codes', None) for k,v in r.items()}) for r in p.predict_many(items)]
assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'fastai', 'fastcore')], 'torch or fastai was imported'
print(json.dumps(out))
'''

def predict_without_torch(model, items):
    "The predictor's answers for `items`, computed in a fresh Python process that cannot import torch or fastai"
    res = subprocess.run([sys.executable, '-c', PREDICT, str(model), json.dumps(items)], capture_output=True, text=True, cwd=root,
                         env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin', 'OMP_NUM_THREADS': '1'}, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)

def check_same(got, expected):
    "Labels equal, values and probabilities within 1e-4 (relative above 1)"
    assert list(got['preds']) == list(expected)
    for k,v in expected.items():
        if isinstance(v, float): assert math.isclose(got['preds'][k], v, rel_tol=1e-4, abs_tol=1e-4), (k, got['preds'][k], v)
        else: assert got['preds'][k] == v, (k, got['preds'][k], v)
        np.testing.assert_allclose(got['probs'][k], expected.probs[k].numpy(), rtol=1e-4, atol=1e-4)

def test_blocker_blocks():
    "The blocked process really cannot import torch (else the tests below prove nothing)"
    res = subprocess.run([sys.executable, '-c', BLOCKER + 'import torch'], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and 'torch is blocked' in res.stderr

def test_images_without_torch(tmp_path):
    df = make_shapes(tmp_path, n=40, img_size=40, seed=5)
    tasks = Tasks(CategoryTask('shape'), RegressionTask('size', unit='px'), MultiCategoryTask('marks'))
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('fname', pref=tmp_path), get_y=tasks.getters,
                       splitter=RandomSplitter(seed=42), item_tfms=Resize(32), batch_tfms=[*aug_transforms(), Normalize.from_stats(*imagenet_stats)])
    set_seed(0)
    learn = mtl_learner(dblock.dataloaders(df, bs=8, num_workers=0), resnet18, tasks, pretrained=False, lin_ftrs=[16])
    model = learn.export_onnx(tmp_path/'m.onnx')
    files = [str(tmp_path/f) for f in df.fname[:6]]
    for got,f in zip(predict_without_torch(model, files), files): check_same(got, learn.predict(f))

def test_table_without_torch(tmp_path):
    pdf = palmerpenguins.load_penguins()
    tasks = Tasks(CategoryTask('species'), CategoryTask('sex'), RegressionTask('body_mass_g'))
    dls = mtl_tabular_dataloaders(pdf, tasks, cat_names=['island'], cont_names=['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm'], seed=0)
    learn = mtl_tabular_learner(dls, tasks, layers=[16])
    model = learn.export_onnx(tmp_path/'t.onnx')
    rows = pdf.drop(columns=['species', 'sex', 'body_mass_g']).iloc[[0, 3, 10, 200, 271]]
    items = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k,v in r.items()} for _,r in rows.iterrows()]
    for got,(_,r) in zip(predict_without_torch(model, items), rows.iterrows()): check_same(got, learn.predict(r))

def test_dense_without_torch(tmp_path):
    "A U-Net's mask (class ids and codes), depth and normals, resized back to the 40x40 scenes from the 32x32 the model sees"
    df = make_scenes(tmp_path, n=12, img_size=40, seed=1)
    reader = lambda col: ColReader(col, pref=tmp_path)
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES, getter=reader('seg')), DepthTask('depth', getter=reader('depth')),
                  NormalsTask('normals', getter=reader('normals')), CategoryTask('scene'))
    dls = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=reader('image'), get_y=tasks.getters, splitter=RandomSplitter(seed=0),
                    item_tfms=Resize(32), batch_tfms=Normalize.from_stats(*imagenet_stats)).dataloaders(df, bs=4, num_workers=0)
    set_seed(0)
    learn = mtl_unet_learner(dls, tiny_encoder(), tasks, pretrained=False, lin_ftrs=[16])
    files = [str(tmp_path/f) for f in df.image[:4]]
    for got,f in zip(predict_without_torch(learn.export_onnx(tmp_path/'u.onnx'), files), files):
        expected = learn.predict(f)
        assert got['preds']['seg'] == expected['seg'].tolist() and got['codes']['seg'] == list(SCENE_CODES)
        assert got['preds']['scene'] == expected['scene']
        for k in ('depth', 'normals'): np.testing.assert_allclose(got['preds'][k], expected[k].numpy(), rtol=1e-4, atol=1e-4)
        for k in expected: np.testing.assert_allclose(got['probs'][k], expected.probs[k].numpy(), rtol=1e-4, atol=1e-4)
        assert np.array(got['preds']['depth']).shape == (1, 40, 40)
