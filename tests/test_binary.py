"A binary task beside a category task: one logit, whole-epoch metrics equal to scikit-learn's, predict, JSON save and load."
import warnings
import numpy as np, pandas as pd, pytest, torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from torch import nn
from fastai.vision.all import ConvLayer, set_seed
from fastai_mtl.all import make_shapes, shapes_dataloaders, mtl_learner, save_mtl, load_mtl, Tasks, CategoryTask, BinaryTask

@pytest.fixture(scope='module')
def red(tmp_path_factory):
    "Generated shapes with a binary column `red` ('yes'/'no'), 20% of it missing"
    path = tmp_path_factory.mktemp('shapes')
    df = make_shapes(path, n=240, img_size=32, seed=2)
    df['red'] = np.where(df.color == 'red', 'yes', 'no')
    df.loc[df.sample(frac=0.2, random_state=0).index, 'red'] = None
    tasks = Tasks(CategoryTask('shape'), BinaryTask('red', pos_label='yes'))
    set_seed(42, reproducible=True)
    dls = shapes_dataloaders(path, df, tasks, bs=32, num_workers=0)
    body = nn.Sequential(ConvLayer(3, 16, stride=2), ConvLayer(16, 32, stride=2), nn.AdaptiveAvgPool2d(1))
    learn = mtl_learner(dls, body, tasks, pretrained=False, lin_ftrs=[])
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit_one_cycle(4, 1e-2)
    return path, df, learn

def test_metrics_equal_scikit_learn_on_labelled_items(red):
    path, df, learn = red
    assert learn.model[1].heads['red'][-1].out_features == 1                       # one logit
    preds, targs = learn.get_preds()
    p, y = preds[1][:, 1], targs[1]
    known = y >= 0
    assert (~known).any() and torch.allclose(preds[1].sum(1), torch.ones(len(y)))
    row = learn.history.df.iloc[-1]
    yk, pk = y[known].numpy(), p[known].numpy()
    assert row['red_accuracy'] == pytest.approx(accuracy_score(yk, pk >= 0.5))
    assert row['red_f1'] == pytest.approx(f1_score(yk, pk >= 0.5))
    assert row['red_roc_auc'] == pytest.approx(roc_auc_score(yk, pk), rel=1e-5)
    assert row['red_roc_auc'] > 0.9, row                                            # red is easy to see: chance is 0.5

def test_predict_gives_the_label_and_its_probability(red):
    path, df, learn = red
    res = learn.predict(path/df.fname[0])
    assert res['red'] in ('yes', 'no') and res.probs['red'].shape == (2,)
    assert (res['red'] == 'yes') == bool(res.probs['red'][1] > 0.5)
    assert 'red: ' in repr(res) and '(p=' in repr(res)

def test_save_load_mtl_predicts_the_same(red, tmp_path):
    path, df, learn = red
    save_mtl(learn, tmp_path/'m')
    loaded = load_mtl(tmp_path/'m', arch=nn.Sequential(ConvLayer(3, 16, stride=2), ConvLayer(16, 32, stride=2), nn.AdaptiveAvgPool2d(1)))
    t = loaded.tasks['red']
    assert (type(t).__name__, list(t.vocab), t.pos_label, t.n_out) == ('BinaryTask', ['no', 'yes'], 'yes', 1)
    items = df.iloc[:8]
    pd.testing.assert_frame_equal(loaded.predict_df(items, with_probs=True), learn.predict_df(items, with_probs=True))

def test_more_than_two_labels_is_a_clear_error(red):
    path, df, _ = red
    tasks = Tasks(BinaryTask('color'))
    with pytest.raises(ValueError, match=r"Task 'color': a binary task needs exactly two labels, got 3"):
        shapes_dataloaders(path, df, tasks, bs=32, num_workers=0)

def test_onnx_predictor_answers_as_learn_predict(red, tmp_path):
    from fastai_mtl.onnx import OnnxPredictor
    path, df, learn = red
    predictor = OnnxPredictor(learn.export_onnx(tmp_path/'red.onnx'))
    for f in df.fname[:6]:
        got, want = predictor.predict(path/f), learn.predict(path/f)
        assert got['red'] == want['red'] and got['shape'] == want['shape']
        np.testing.assert_allclose(got.probs['red'], want.probs['red'].numpy(), atol=1e-5)
