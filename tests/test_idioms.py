"fastai's idioms on one small multi-task learner: each does the right thing for every task, with values checked by hand."
import warnings
import pytest, torch, numpy as np, pandas as pd
from torch import nn
from sklearn.metrics import accuracy_score, confusion_matrix
from fastai.vision.all import (ConvLayer, set_seed, CSVLogger, SaveModelCallback, EarlyStoppingCallback, GradientAccumulation,
                               Callback, load_learner, minimum, steep, valley, slide, Interpretation, ClassificationInterpretation,
                               Flip, Normalize)
from fastai_mtl.all import (make_shapes, shapes_dataloaders, mtl_learner, Tasks, CategoryTask, RegressionTask, BinaryTask,
                            MTLInterpretation, TaskClassificationInterpretation)

NAMES = ('shape', 'color', 'size', 'big')

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp('shapes32')
    df = make_shapes(path, n=128, img_size=32, seed=6)
    df['big'] = np.where(df['size'] > df['size'].median(), 'big', 'small')
    df.loc[df.index[::4], 'big'] = None   # a quarter of the binary labels missing
    return path, df

def _tasks(): return Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), BinaryTask('big', pos_label='big'))

def _learner(data, **kwargs):
    path, df = data
    tasks = _tasks()
    set_seed(42, reproducible=True)
    dls = shapes_dataloaders(path, df, tasks, bs=16, num_workers=0, batch_tfms=Flip())
    body = nn.Sequential(ConvLayer(3, 8, stride=2), ConvLayer(8, 16, stride=2), ConvLayer(16, 16))
    return mtl_learner(dls, body, tasks, pretrained=False, lin_ftrs=[16], path=path, **kwargs)

def _quiet(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return f(*args, **kwargs)

@pytest.fixture(scope='module')
def learn(data):
    learn = _learner(data)
    with learn.no_bar(), learn.no_logging(): _quiet(learn.fit_one_cycle, 3, 1e-2)
    return learn

def _labelled(learn):
    "Validation predictions, targets and each task's labelled items, from `get_preds`"
    preds, targs = learn.get_preds()
    masks = [t.item_mask(y) for t,y in zip(learn.tasks, targs)]
    return preds, targs, masks

def test_validate_equals_metrics_by_hand(learn):
    names = learn.recorder.metric_names[2:-1]   # valid_loss, then the metrics
    res = dict(zip(names, learn.validate()))
    preds, targs, masks = _labelled(learn)
    for i,task in enumerate(('shape', 'color')):
        assert res[f'{task}_accuracy'] == pytest.approx(accuracy_score(targs[i], preds[i].argmax(1)), abs=1e-6)
    assert res['size_mae'] == pytest.approx((preds[2] - targs[2]).abs().mean().item(), rel=1e-5)
    m = masks[3]
    assert res['big_accuracy'] == pytest.approx(((preds[3][m, 1] > 0.5).long() == targs[3][m]).float().mean().item(), abs=1e-6)
    assert m.sum() < len(m)   # the missing labels were left out

def test_get_preds_with_loss(learn):
    preds, targs, losses = learn.get_preds(with_loss=True)
    assert losses.shape == (len(learn.dls.valid_ds),) and torch.isfinite(losses).all()
    assert [p.shape[0] for p in preds] == [len(learn.dls.valid_ds)]*4
    # The combined loss of each item: its tasks' losses (of the labelled ones) weighted; their mean is the validation loss
    assert losses.mean().item() == pytest.approx(learn.validate()[0], rel=0.05)

def test_summary_names_every_head(learn):
    s = learn.summary()
    assert s.count('AdaptiveMaxPool2d') == 4 and sum(l.strip() == '16 x 3' for l in s.splitlines()) == 2   # one pooled head per task; shape's and color's 3 classes
    n_params = sum(p.numel() for p in learn.model.parameters())
    assert f'Total params: {n_params:,}' in s and 'MultiTaskLoss' in s

def test_lr_find_with_several_suggestions(data):
    learn = _learner(data)
    with learn.no_bar(), learn.no_logging():
        res = _quiet(learn.lr_find, suggest_funcs=(minimum, steep, valley, slide), num_it=30, show_plot=False)
    assert res._fields == ('minimum', 'steep', 'valley', 'slide')
    assert all(np.isfinite(v) and 1e-7 < v < 10 for v in res), res

def test_csv_logger_keeps_every_task_column(data, tmp_path):
    learn = _learner(data)
    learn.path = tmp_path
    with learn.no_bar(): _quiet(learn.fit, 2, 1e-2, cbs=CSVLogger())
    df = pd.read_csv(tmp_path/'history.csv')
    assert list(df.columns) == learn.recorder.metric_names
    assert {f'{n}_loss' for n in NAMES} <= set(df.columns) and 'big_roc_auc' in df.columns
    assert df['shape_accuracy'].iloc[-1] == pytest.approx(learn.recorder.values[-1][learn.recorder.metric_names.index('shape_accuracy')-1], abs=1e-6)

def test_save_model_and_early_stopping_on_a_task_metric(data, tmp_path):
    learn = _learner(data)
    learn.path = tmp_path
    cbs = [SaveModelCallback(monitor='color_accuracy', fname='best'), EarlyStoppingCallback(monitor='shape_loss', min_delta=10., patience=1)]
    with learn.no_bar(), learn.no_logging(): _quiet(learn.fit, 6, 1e-2, cbs=cbs)
    assert len(learn.recorder.values) == 2   # no epoch improved shape_loss by 10: stopped after `patience` epochs
    best = max(v[learn.recorder.metric_names.index('color_accuracy')-1] for v in learn.recorder.values)
    learn.load('best')
    assert dict(zip(learn.recorder.metric_names[2:-1], learn.validate()))['color_accuracy'] == pytest.approx(best)

class _Steps(Callback):
    def before_fit(self): self.steps = 0
    def after_step(self): self.steps += 1

def test_gradient_accumulation(data):
    learn = _learner(data)
    steps = _Steps()
    with learn.no_bar(), learn.no_logging(): _quiet(learn.fit, 1, 1e-2, cbs=[GradientAccumulation(n_acc=32), steps])
    n = len(learn.dls.train)
    assert steps.steps == n//2, (steps.steps, n)   # one step for every two batches of 16

def test_freeze_to_and_fit_flat_cos(data):
    learn = _learner(data, splitter=lambda m: [list(m[0][:2].parameters()), list(m[0][2:].parameters()), list(m[1].parameters())])
    learn.freeze_to(1)
    first, second = learn.model[0][0][0].weight.detach().clone(), learn.model[0][2][0].weight.detach().clone()
    with learn.no_bar(), learn.no_logging(): _quiet(learn.fit_flat_cos, 2, 1e-2, pct_start=0.5)
    assert torch.equal(first, learn.model[0][0][0].weight) and not torch.equal(second, learn.model[0][2][0].weight)
    lrs = np.array(learn.recorder.lrs)
    half = len(lrs)//2
    assert np.allclose(lrs[:half], 1e-2) and (np.diff(lrs[half:]) < 0).all() and lrs[-1] < 1e-3   # flat, then cosine annealing

def test_show_results_draws_every_task(learn):
    import matplotlib.pyplot as plt
    plt.close('all')
    learn.show_results(max_n=2)
    texts = ' '.join(t.get_text() for ax in plt.gcf().axes for t in ax.texts + [ax.title])
    assert all(n in texts for n in NAMES), texts
    plt.close('all')

def test_export_and_load_learner_cpu(learn, tmp_path):
    learn.export(tmp_path/'model.pkl')
    loaded = _quiet(load_learner, tmp_path/'model.pkl', cpu=True)
    fname = learn.dls.valid_ds.items['fname'].iloc[0]
    item = learn.dls.path/fname if hasattr(learn.dls, 'path') else fname
    row = learn.dls.valid_ds.items.iloc[0]
    assert loaded.predict(row) == learn.predict(row)
    assert next(loaded.model.parameters()).device.type == 'cpu'

def test_tta_per_task(learn):
    (preds, targs), (plain, ptargs) = _quiet(learn.tta, beta=1.), learn.get_preds()
    for p,q in zip(preds, plain): assert torch.allclose(p, q, atol=1e-6)   # beta=1: the plain predictions
    avg, _ = _quiet(learn.tta, n=2)
    assert [a.shape for a in avg] == [p.shape for p in plain]
    assert torch.allclose(avg[0].sum(1), torch.ones(len(avg[0])), atol=1e-5)   # class probabilities still
    assert any(not torch.allclose(a, p) for a,p in zip(avg, plain))          # the flipped passes changed them

def test_fastai_interpretation_classes(learn):
    interp = Interpretation.from_learner(learn)
    assert isinstance(interp, MTLInterpretation)
    ci = ClassificationInterpretation.from_learner(learn)
    assert isinstance(ci, TaskClassificationInterpretation) and ci.task.name == 'shape'   # the first category task
    preds, targs, _ = _labelled(learn)
    assert (np.asarray(ci.confusion_matrix()) == confusion_matrix(targs[0], preds[0].argmax(1), labels=range(3))).all()
    color = ClassificationInterpretation.from_learner(learn, task='color')
    assert (np.asarray(color.confusion_matrix()) == confusion_matrix(targs[1], preds[1].argmax(1), labels=range(3))).all()
    with pytest.raises(ValueError, match="MTLInterpretation"): ClassificationInterpretation.from_learner(learn, task='size')
