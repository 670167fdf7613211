"Hand-computed values of the semantics (tasks, masked losses, metrics, loss-based weightings, labels): fast, and the test selection of `mutmut run`"
import math, pickle, warnings
from copy import deepcopy
from functools import partial
from types import SimpleNamespace
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from fastai.metrics import ActivationType
from fastai.vision.all import L, ColReader, TfmdLists, accuracy, mae, Category, TensorCategory, TensorMultiCategory
from fastai_mtl.all import (Tasks, CategoryTask, RegressionTask, MultiCategoryTask, MultiTaskLoss, Weighting, EqualWeighting,
                            UncertaintyWeighting, RandomLossWeighting, GeometricLossWeighting, LogLossWeighting, DynamicWeightAverage,
                            FAMO, MetricInverseWeighting, WeightingCallback, TaskWeight, TaskView, TaskMetric, TaskLoss,
                            is_missing, is_labelled, TaskColReader, named, TaskCategorize, TaskMultiCategorize, TaskRegressionSetup,
                            encode_targets, TaskDL)
from fastai.vision.all import (Metric, AccumMetric, Categorize, Datasets, Transform, mk_metric, error_rate, top_k_accuracy,
                               accuracy_multi, rmse, R2Score, PearsonCorrCoef, ExplainedVariance, F1Score, RocAuc, RocAucBinary, RocAucMulti,
                               F1ScoreMulti, MatthewsCorrCoef, Perplexity)
from fastai_mtl.all import BinaryTask, TaskBinarize, metric_kind
from fastai_mtl.labels import _py, _task_tfm, _encoded_targets, _read_column
import fastai_mtl.metrics as _metrics, fastai_mtl.weighting as _weighting
from fastai_mtl.tasks import Destandardize, check_unit
from torch import nn
from fastai.vision.all import DataBlock, RegressionBlock, CategoryBlock, IndexSplitter, Flatten, SigmoidRange
from fastai.losses import LabelSmoothingCrossEntropyFlat

def close(a, b, tol=1e-5): assert torch.allclose(torch.as_tensor(a).float(), torch.as_tensor(b).float(), atol=tol), (a, b)

def _tasks(wc=1., wr=2., wm=0.5):
    return Tasks(CategoryTask('c', weight=wc), RegressionTask('r', weight=wr, standardize=False), MultiCategoryTask('m', weight=wm))

def _batch():
    torch.manual_seed(0)
    preds = (torch.randn(4, 3), torch.randn(4), torch.randn(4, 2))
    targs = (tensor_([0, -1, 2, 1]), torch.tensor([1., float('nan'), 3., -2.]),
             torch.tensor([[1., 0.], [float('nan')]*2, [0., 1.], [1., 1.]]))
    return preds, targs

def tensor_(o, **kw): return torch.tensor(o, **kw)

def _expected(preds, targs):
    "Each task's loss computed by hand over its labelled items only"
    keep = [0, 2, 3]
    ce = F.cross_entropy(preds[0][keep], targs[0][keep])
    mse = F.mse_loss(preds[1][[0, 2, 3]], targs[1][[0, 2, 3]])
    bce = F.binary_cross_entropy_with_logits(preds[2][[0, 2, 3]], targs[2][[0, 2, 3]])
    return torch.stack([ce, mse, bce])

# Loss
def test_masked_losses_equal_losses_without_the_masked_items():
    preds, targs = _batch()
    lf = MultiTaskLoss(_tasks())
    loss = lf(preds, *targs)
    exp = _expected(preds, targs)
    close(lf.task_losses, exp)
    close(lf.task_counts, [3, 3, 6])
    close(loss, (tensor_([1., 2., 0.5])*exp).sum())
    close(lf.task_weights, [1., 2., 0.5])

def test_a_tasks_weight_multiplies_its_term():
    preds, targs = _batch()
    exp = _expected(preds, targs)
    close(MultiTaskLoss(_tasks(3., 0., 0.))(preds, *targs), 3*exp[0])
    close(MultiTaskLoss(_tasks(0., 0., 4.))(preds, *targs), 4*exp[2])

def test_reduction_none_gives_each_items_weighted_loss():
    preds, targs = _batch()
    lf = MultiTaskLoss(_tasks(), reduction='none')
    out = lf(preds, *targs)
    ce = F.cross_entropy(preds[0], targs[0].clamp_min(0), reduction='none')*tensor_([1., 0, 1, 1])
    mse = (preds[1] - targs[1].nan_to_num(0.))**2*tensor_([1., 0, 1, 1])
    bce = F.binary_cross_entropy_with_logits(preds[2], targs[2].nan_to_num(0.), reduction='none').mean(1)*tensor_([1., 0, 1, 1])
    close(out, ce + 2*mse + 0.5*bce)
    assert out.shape == (4,)

def test_an_unlabelled_task_adds_nothing():
    preds, targs = _batch()
    targs = (tensor_([-1, -1, -1, -1]), *targs[1:])
    lf = MultiTaskLoss(_tasks())
    loss = lf(preds, *targs)
    exp = _expected(*_batch())
    close(lf.task_losses[0], 0.)
    close(lf.task_counts[0], 0.)
    close(loss, 2*exp[1] + 0.5*exp[2])

def test_loss_errors_name_the_tasks():
    preds, targs = _batch()
    lf = MultiTaskLoss(_tasks())
    with pytest.raises(ValueError, match=r"returned 2 output\(s\) but there are 3 tasks \['c', 'r', 'm'\]"): lf(preds[:2], *targs)
    with pytest.raises(ValueError, match=r"returned 1 output\(s\)"): lf(preds[0], *targs)
    with pytest.raises(ValueError, match=r"Got 2 target\(s\) for 3 tasks \['c', 'r', 'm'\]"): lf(preds, *targs[:2])
    with pytest.raises(ValueError, match="Task 'r': the model's output has shape"): lf((preds[0], torch.randn(4, 2), preds[2]), *targs)

def test_check_finite_names_the_bad_task():
    lf = MultiTaskLoss(_tasks())
    lf.task_losses = tensor_([1., float('nan'), float('inf')])
    with pytest.raises(FloatingPointError, match=r"^The loss of task 'r' \(nan\), 'm' \(inf\) is not finite"): lf.check_finite()
    lf.task_losses = tensor_([1., 2., 3.])
    with pytest.raises(FloatingPointError, match=r"^The combined loss \(of finite task losses, by .*\) is not finite"): lf.check_finite()

def test_activation_and_decodes_per_task():
    preds, _ = _batch()
    lf = MultiTaskLoss(_tasks())
    act = lf.activation(preds)
    close(act[0], F.softmax(preds[0], -1)); close(act[1], preds[1]); close(act[2], torch.sigmoid(preds[2]))
    dec = lf.decodes(preds)
    close(dec[0], preds[0].argmax(-1)); close(dec[2], preds[2] > 0.5)  # fastai decodes the activated output

def test_static_weighting_records_its_weights_only_in_training():
    w = Weighting(); w.setup(_tasks(1., 2., 3.))
    assert w.n == 3 and w.names == ['c', 'r', 'm']
    close(w(tensor_([1., 1., 1.]), tensor_([1., 1., 1.])), 6.)
    w.weights = None
    w.eval(); w(tensor_([1., 1., 1.]), tensor_([1., 1., 1.]))
    assert w.weights is None
    w.train(); w(tensor_([1., 1., 1.]), tensor_([1., 1., 1.]))
    close(w.weights, [1., 2., 3.])

# Weightings
def _ww(w, ws=(1., 1.)):
    w.setup(Tasks(*[RegressionTask(n, weight=x) for n,x in zip('ab', ws)]))
    return w

def test_equal_weighting_ignores_the_task_weights():
    w = _ww(EqualWeighting(), (3., 5.))
    close(w(tensor_([1., 2.]), tensor_([1., 1.])), 3.)
    close(w.weights, [1., 1.])

def test_uncertainty_weighting_formula():
    w = _ww(UncertaintyWeighting(), (1., 3.))
    with torch.no_grad(): w.log_vars.copy_(tensor_([math.log(2.), 1.]))
    loss = w(tensor_([1., 3.]), tensor_([2., 0.]))
    close(loss, 1/(2*2) + 0.5*math.log(2.))  # the unlabelled task 'b' adds nothing
    close(w.weights, [1/(2*2), 3*1/(2*math.e)])
    loss = w(tensor_([1., 3.]), tensor_([2., 1.]))
    close(loss, 1/4 + 0.5*math.log(2.) + 3*(3/(2*math.e) + 0.5))
    loss.backward()
    close(w.log_vars.grad, [-1/4 + 0.5, 3*(-3/(2*math.e) + 0.5)])

def test_random_loss_weighting_is_a_softmax_of_normal_samples():
    w = _ww(RandomLossWeighting(), (1., 1.))
    w.setup(Tasks(*[RegressionTask(n) for n in 'abc']))
    losses = tensor_([1., 2., 4.])
    torch.manual_seed(3)
    loss = w(losses, tensor_([1., 0., 1.]))
    torch.manual_seed(3)
    exp = F.softmax(torch.randn(3), 0)*tensor_([1., 0., 1.])
    close(w.weights, exp)
    close(loss, (exp*losses).sum())
    w.eval()
    close(w(losses, tensor_([1., 1., 1.])), 7/3)

def test_geometric_loss_weighting_formula():
    w = _ww(GeometricLossWeighting())
    losses = tensor_([1., 4.], requires_grad=True)
    loss = w(losses, tensor_([1., 1.]))
    close(loss, 2.)  # sqrt(1*4)
    close(w.weights, [2/(2*1), 2/(2*4)])  # G/(nL)
    loss.backward()
    close(losses.grad, w.weights)
    close(w(tensor_([9., 4.]), tensor_([1., 0.])), 9.)  # only the labelled task
    close(w.weights, [9/(1*9), 0.])
    close(w(tensor_([0., 4.]), tensor_([1., 1.])), math.sqrt(1e-12*4), 1e-9)

def test_log_loss_weighting_formula():
    w = _ww(LogLossWeighting(), (1., 2.))
    assert w.eps == 1e-8
    close(w(tensor_([2., 4.]), tensor_([1., 0.])), math.log(2.))
    close(w.weights, [1/2, 0.])
    close(w(tensor_([2., 4.]), tensor_([1., 1.])), math.log(2.) + 2*math.log(4.))
    close(w.weights, [1/2, 2/4])
    close(LogLossWeighting(eps=1.).terms(tensor_([0.]), tensor_([1.]))[0], 0.)

def test_dynamic_weight_average_formula():
    assert DynamicWeightAverage().temp == 2.
    w = _ww(DynamicWeightAverage(temp=2.), (1., 3.))
    close(w(tensor_([1., 2.]), tensor_([1., 1.])), 1 + 3*2)  # weights 1 until two epochs are seen
    w.after_train(None)
    close(w.epoch_losses[0], [1., 2.])
    w.before_epoch(None)
    w.after_train(None)  # nothing accumulated: no epoch recorded
    assert len(w.epoch_losses) == 1
    w(tensor_([1., 4.]), tensor_([1., 1.])); w(tensor_([0., 0.]), tensor_([1., 3.]))  # means over items: 0.5 and 1.
    w.eval(); w(tensor_([9., 9.]), tensor_([5., 5.])); w.train()  # validation is not counted
    w.after_train(None)
    close(w.epoch_losses[1], [0.5, 1.])
    rate_w = 2*F.softmax(tensor_([0.5/1, 1./2])/2, 0)
    close(w.rate_weights, rate_w)
    close(w(tensor_([1., 1.]), tensor_([1., 1.])), rate_w[0] + 3*rate_w[1])
    close(w.weights, rate_w*tensor_([1., 3.]))

def test_famo_terms_and_update():
    assert (FAMO().lr, FAMO().gamma) == (0.025, 0.001)
    w = _ww(FAMO(lr=0.1, gamma=0.), (1., 1.))
    assert (w.lr, w.gamma, w.eps) == (0.1, 0., 1e-8)
    losses = tensor_([1., 4.], requires_grad=True)
    loss = w(losses, tensor_([1., 1.]))
    c = 0.5/1 + 0.5/4
    close(loss, (0.5*math.log(1.) + 0.5*math.log(4.))/c)
    close(w.weights, [0.5/(c*1), 0.5/(c*4)])
    close(w.weights.sum(), 1.)
    loss.backward()
    close(losses.grad, w.weights)
    close(w.logits, [0., 0.])  # no previous batch yet
    w(tensor_([0.5, 4.]), tensor_([1., 1.]))  # task 'a's log-loss decreased by log 2: a first Adam step of lr against the gradient
    close(w.logits, [-0.1, 0.1], 1e-4)
    close(w.prev[0], [0.5, 4.])
    with torch.no_grad(): w(tensor_([0.1, 0.1]), tensor_([1., 1.]))
    close(w.logits, [-0.1, 0.1], 1e-4)  # no update without gradients
    close(w.get_extra_state()['prev'][0], [0.5, 4.])  # saved with the loss: a resumed run goes on from them

def test_famo_ignores_unlabelled_tasks():
    w = _ww(FAMO(lr=0.1, gamma=0.))
    loss = w(tensor_([2., 5.]), tensor_([1., 0.]))
    close(loss, math.log(2.)*2)  # z=0.5, c=0.25
    close(w.weights, [1., 0.])
    w(tensor_([1., 1.]), tensor_([1., 1.]))  # task 'b' was unlabelled before: only 'a' moves the logits
    close(w.logits, [-0.1, 0.1], 1e-4)
    w.eval(); w(tensor_([9., 9.]), tensor_([1., 1.]))
    close(w.prev[0], [1., 1.])

class _M(SimpleNamespace): pass

def test_metric_inverse_weighting_formula():
    w = _ww(MetricInverseWeighting(), (1., 2.))
    learn = SimpleNamespace(metrics=[_M(name='a_loss', value=1.), _M(name='b_loss', value=3.)])
    w.after_validate(learn)
    close(w.metric_weights, [1., 1.])  # before any training: nothing read
    w.before_fit(learn); w.after_validate(learn)
    close(w.metric_weights, [1., 1.])
    w.before_train(learn); w.after_validate(learn)
    close(w.metric_weights, [2*1/4, 2*3/4])
    close(w(tensor_([1., 1.]), tensor_([1., 1.])), 0.5 + 2*1.5)
    w = _ww(MetricInverseWeighting({'a': 'accuracy'}))
    w.before_train(None)
    w.after_validate(SimpleNamespace(metrics=[_M(name='a_accuracy', value=0.5), _M(name='b_loss', value=2.), _M(name='a_loss', value=9.)]))
    close(w.metric_weights, [2*2/4, 2*2/4])  # hardness 1/0.5 and 2
    w.after_validate(SimpleNamespace(metrics=[_M(name='a_accuracy', value=0.), _M(name='b_loss', value=1.)]))
    close(w.metric_weights, [2*1e8/(1e8 + 1), 2/(1e8 + 1)], 1e-6)
    w.after_validate(SimpleNamespace(metrics=[_M(name='a_accuracy', value=None), _M(name='b_loss', value=1.)]))
    close(w.metric_weights, [2*1e8/(1e8 + 1), 2/(1e8 + 1)], 1e-6)  # a missing value: unchanged

class _Events(Weighting):
    def __init__(self): self.seen = []
    def __getattr__(self, k):
        if k.startswith(('before_', 'after_')): return lambda learn: self.seen.append(k)
        return super().__getattr__(k)

def test_weighting_callback_sends_events_and_modes():
    w = _Events(); w.setup(_tasks())
    cb = WeightingCallback()
    cb.learn = SimpleNamespace(loss_func=SimpleNamespace(weighting=w))
    w.eval(); cb.before_train(); assert w.training
    cb.before_validate(); assert not w.training
    for e in ('before_fit', 'before_epoch', 'before_batch', 'after_pred', 'after_backward', 'after_fit'): getattr(cb, e)()
    cb.after_train(); cb.after_cancel_validate(); cb.after_validate(); cb.after_validate()
    assert w.seen == ['before_train', 'before_validate', 'before_fit', 'before_epoch', 'before_batch', 'after_pred',
                      'after_backward', 'after_fit', 'after_train', 'after_validate']
    cb.after_cancel_train(); cb.after_train(); assert w.seen[-1] == 'after_validate'
    cb.learn = SimpleNamespace(loss_func=SimpleNamespace())
    cb.before_train(); cb.before_validate(); cb.after_backward()  # no weighting: nothing to do

def test_task_weight_metric():
    tasks = _tasks()
    m = TaskWeight(tasks[1], 1)
    m.reset(); assert m.value is None
    m.accumulate(SimpleNamespace(loss_func=MultiTaskLoss(tasks)))
    assert m.value == 2. and m.name == 'w_r'

# Metrics
def _learn(preds, targs, lf=None):
    return SimpleNamespace(pred=preds, yb=targs, loss_func=lf, to_detach=lambda b, cpu=True, gather=True: b.detach())

def test_task_view_sees_only_the_labelled_items():
    preds, targs = _batch()
    tasks = _tasks()
    v = TaskView(_learn(preds, targs), 2, tasks[2])
    close(v.pred, preds[2][[0, 2, 3]]); close(v.y, targs[2][[0, 2, 3]])
    assert v.yb[0] is v.y and v.loss_func is None
    assert v.to_detach(v.pred).requires_grad is False

def test_task_metrics_on_a_hand_made_batch():
    preds = (tensor_([[2., 1., 0.], [0., 3., 0.], [0., 0., 1.], [5., 0., 0.]]), tensor_([1., 2., 3., 4.]), torch.zeros(4, 2))
    targs = (tensor_([0, -1, 1, 0]), tensor_([1., float('nan'), 1., 0.]), torch.full((4, 2), float('nan')))
    tasks = Tasks(CategoryTask('c'), RegressionTask('r'), MultiCategoryTask('m'))
    learn = _learn(preds, targs)
    ms = tasks.metrics
    assert [m.name for m in ms] == ['c_accuracy', 'c_loss', 'r_mae', 'r_loss', 'm_accuracy_multi', 'm_loss']
    for m in ms[0], ms[2], ms[4]: m.reset(); m.accumulate(learn); m.accumulate(learn)
    close(ms[0].value, 2/3)  # items 0 and 3 right, item 2 wrong, item 1 unlabelled
    close(ms[2].value, (0 + 2 + 4)/3)
    assert ms[4].value is None  # no labelled item: nothing accumulated
    ms[0].reset(); ms[0].accumulate(_learn(preds, (tensor_([1, -1, 1, 0]), *targs[1:]))); close(ms[0].value, 1/3)

def test_task_loss_metric_is_a_count_weighted_mean():
    tasks = _tasks()
    m = TaskLoss(tasks[1], 1)
    m.reset(); assert m.value is None and m.name == 'r_loss'
    lf = SimpleNamespace(task_losses=tensor_([9., 2.]), task_counts=tensor_([1., 3.]))
    learn = SimpleNamespace(loss_func=lf, to_detach=lambda b: b)
    m.accumulate(learn)
    lf.task_losses, lf.task_counts = tensor_([9., 6.]), tensor_([1., 1.])
    m.accumulate(learn)
    close(m.value, (2*3 + 6)/4)

# Labels
@pytest.mark.parametrize('o', [None, float('nan'), np.nan, np.float32('nan'), pd.NA, pd.NaT, '', '  ', '\t'])
def test_is_missing(o): assert is_missing(o) is True

@pytest.mark.parametrize('o', ['a', ' a', 0, 0., False, [float('nan')], (), np.array([np.nan]), 'nan'])
def test_is_not_missing(o): assert is_missing(o) is False

def test_is_labelled():
    assert is_labelled(tensor_([1., float('nan'), -1.])).tolist() == [True, False, True]
    assert is_labelled(tensor_([0, -1, 2, -5])).tolist() == [True, False, True, False]

def test_task_col_reader_names_task_and_columns():
    r = TaskColReader('size', task='sz')
    assert r(pd.Series({'size': 3, 'b': 1})) == 3
    with pytest.raises(ValueError, match=r"^Task 'sz': label column 'size' is not in the data, whose columns are \['a', 'b'\]$"):
        r(pd.Series({'a': 1, 'b': 2}))

def test_named():
    c = Category('x')
    assert named(c, 't') is c and c.task == 't'

def _setup(tfm, items, valid=None):
    items = L(items)
    if valid is not None: items.valid = L(valid)
    tfm.setup(items, train_setup=True)
    return tfm

def test_task_categorize():
    tfm = _setup(TaskCategorize(task='c'), ['b', 'a', None, '', 'b'], ['a'])
    assert list(tfm.vocab) == ['a', 'b'] and tfm.c == 2
    assert tfm('a') == 0 and tfm('b') == 1 and tfm(None) == -1 and tfm(' ') == -1
    assert isinstance(tfm('b'), TensorCategory)
    assert tfm.decode(TensorCategory(0)) == 'a' and tfm.decode(TensorCategory(1)) == 'b' and tfm.decode(TensorCategory(-1)) == '#na#'
    assert tfm.decode(TensorCategory(0)).task == 'c'
    with pytest.raises(ValueError, match=r"^Task 'c': label 'z' is not one of the training labels \['a', 'b'\]$"): tfm('z')
    assert list(_setup(TaskCategorize(sort=False, task='c'), ['b', 'a']).vocab) == ['b', 'a']

def test_task_categorize_errors():
    with pytest.raises(ValueError, match=r"^Task 'c': the validation set has labels \['z'\] that the training set does not have"):
        _setup(TaskCategorize(task='c'), ['a', 'b'], ['a', None, 'z'])
    with pytest.raises(ValueError, match=r"^Task 'c': the data has labels \['z'\] that are not in the vocab given to the task, \['a', 'b'\]"):
        _setup(TaskCategorize(vocab=['a', 'b'], task='c'), ['a', 'z', None])
    assert list(_setup(TaskCategorize(vocab=['b', 'a'], task='c'), ['a', None]).vocab) == ['a', 'b']
    with pytest.raises(ValueError, match=r"^Task 'c': the labels mix types that cannot be ordered \(\['int', 'str'\]\), e.g. \[1, 'a'\]"):
        _setup(TaskCategorize(task='c'), ['a', 1, None])
    with pytest.raises(ValueError, match=r"^Task 'c': every label in the training set is missing; it needs"):
        _setup(TaskCategorize(task='c'), [None, ''])
    with pytest.raises(ValueError, match=r"^Task 'c': the training set is empty; it needs at least one labelled training item$"):
        _setup(TaskCategorize(task='c'), [])

def test_task_multi_categorize():
    tfm = _setup(TaskMultiCategorize(task='m'), ['b a', None, ['c'], ' b '], ['a c'])
    assert list(tfm.vocab) == ['a', 'b', 'c'] and tfm.c == 3
    close(tfm('a c'), [1., 0., 1.]); close(tfm(['b']), [0., 1., 0.])
    assert tfm(None).isnan().all() and tfm(None).shape == (3,) and isinstance(tfm(None), TensorMultiCategory)
    assert tfm.decode(TensorMultiCategory(tensor_([1., 0., 1.]))) == ['a', 'c']
    assert tfm.decode(TensorMultiCategory(tensor_([float('nan')]*3))) == ['#na#']
    assert tfm.decode(TensorMultiCategory(tensor_([0., 1., 0.]))).task == 'm'
    with pytest.raises(ValueError, match=r"^Task 'm': labels \['z'\] are not among the training labels \['a', 'b', 'c'\]$"): tfm('a z')
    with pytest.raises(TypeError, match=r"^Task 'm': expected a list of labels or a string of labels separated by ' ', got 3$"): tfm(3)
    assert list(_setup(TaskMultiCategorize(label_delim=';', task='m'), ['x;y', 'y']).vocab) == ['x', 'y']
    assert list(_setup(TaskMultiCategorize(vocab=['b', 'a'], task='m'), ['a']).vocab) == ['b', 'a']
    with pytest.raises(ValueError, match="not in the vocab given"): _setup(TaskMultiCategorize(vocab=['a'], task='m'), ['a b'])

def test_task_multi_categorize_warns_of_another_delimiter():
    with pytest.warns(UserWarning, match=r"^Task 'm': labels \['a,b'\] look like several labels joined by ',', but label_delim is ' '"):
        _setup(TaskMultiCategorize(task='m'), ['a', 'b', 'a,b'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        _setup(TaskMultiCategorize(task='m'), ['a', 'a,b'])  # 'b' is not a label: no warning
        _setup(TaskMultiCategorize(label_delim=',', task='m'), ['a', 'b', 'a,b'])

def test_task_regression_setup():
    tfm = _setup(TaskRegressionSetup(task='r'), [1., '2.5', None])
    close(tfm('2.5'), 2.5); close(tfm(3), 3.); assert tfm(3).dtype == torch.float32
    assert tfm(None).isnan() and tfm(None).ndim == 0 and tfm('').isnan()
    assert tfm.decode(tensor_(2.5)) == 2.5 and tfm.decode(tensor_(2.5)).task == 'r'
    assert tfm.decode(tensor_([1., 2.])) == (1., 2.)
    with pytest.raises(ValueError, match=r"^Task 'r': expected a number, got 'x'$"): tfm('x')
    with pytest.raises(ValueError, match=r"^Task 'r': expected a finite number, got inf$"): tfm(float('inf'))
    with pytest.raises(ValueError, match=r"^Task 'r': expected a number, got 'x'$"): _setup(TaskRegressionSetup(task='r'), [1., 'x'])
    two = TaskRegressionSetup(c=2, task='r')
    assert two(None).shape == (2,) and two(None).isnan().all()
    one = TaskRegressionSetup(c=1, task='r')
    assert one(None).ndim == 0

def _tl(df, tfm, col='a'):
    tl = TfmdLists(df, [ColReader(col), tfm], splits=[list(range(len(df))), []])
    return tl.train

def test_encode_targets_equals_the_per_item_pipeline():
    df = pd.DataFrame({'a': ['x', None, 'y', 'x', float('nan')], 'b': [1., 2., None, 4., 5.]})
    tl = _tl(df, TaskCategorize(task='a'))
    t, typ = encode_targets(tl)
    assert typ is TensorCategory and t.tolist() == [0, -1, 1, 0, -1] == [int(tl[i]) for i in range(5)]
    assert type(t) is torch.Tensor
    t, typ = encode_targets(_tl(df, TaskRegressionSetup(task='b'), 'b'))
    assert t[2].isnan() and t[[0, 1, 3, 4]].tolist() == [1., 2., 4., 5.]
    tl = _tl(df, TaskMultiCategorize(task='a'))
    t, typ = encode_targets(tl)
    assert typ is TensorMultiCategory and t.shape == (5, 2) and t[1].isnan().all() and t[0].tolist() == [1., 0.]

def test_encode_targets_declines_what_it_cannot_encode():
    df = pd.DataFrame({'a': ['x', 'y'], 'b': [1., 2.]})
    tl = _tl(df, TaskCategorize(task='a'))
    tl.tfms.fs[0] = lambda r: r['a']
    assert encode_targets(tl) is None  # not a ColReader
    assert encode_targets(TfmdLists(df, [ColReader(['a', 'b'])], splits=[[0, 1], []]).train) is None  # two columns
    tl = TfmdLists(df, [ColReader('a')])
    tl.tfms.fs[0] = ColReader('z')
    assert encode_targets(tl) is None  # not a column
    tl = TfmdLists(df, [ColReader('a'), TaskCategorize(task='a')])
    tl.items = L(df.to_dict('records'))
    assert encode_targets(tl) is None  # not a DataFrame
    assert encode_targets(TfmdLists(df, [ColReader('a')], splits=[[0, 1], []]).train) is None  # not tensors
    tl = TfmdLists(df, [ColReader('a'), TaskCategorize(task='a')])
    tl.items = df.iloc[:0]
    assert encode_targets(tl) is None  # empty
    df2 = pd.DataFrame({'a': [[1.], [1., 2.]]})
    assert encode_targets(TfmdLists(df2, [ColReader('a'), TaskRegressionSetup(task='a')])) is None  # shapes differ

def test_encode_targets_encodes_each_value_once():
    calls = []
    def tfm(o): calls.append(o); return torch.tensor(float(o))
    df = pd.DataFrame({'a': [1., 2., 1., 1.], 'l': [[1.], [1.], [2.], [1.]]})
    tl = TfmdLists(df, [ColReader('a'), tfm])
    calls.clear()
    t, typ = encode_targets(tl)
    assert t.tolist() == [1., 2., 1., 1.] and calls == [1., 2.]
    tl = TfmdLists(df, [ColReader('l'), lambda o: (calls.append(o), torch.tensor(o))[1]])
    calls.clear()
    t, _ = encode_targets(tl)
    assert t.tolist() == [[1.], [1.], [2.], [1.]] and len(calls) == 4  # unhashable values: encoded each time

def test_task_dl_serves_the_encoded_targets():
    from fastai.vision.all import Datasets
    df = pd.DataFrame({'a': ['x', 'y', None, 'x'], 'b': [1., 2., 3., None]})
    dsets = Datasets(df, [[ColReader('b'), TaskRegressionSetup(task='b')], [ColReader('a'), TaskCategorize(task='a')]], splits=[[0, 1, 2, 3], []])
    dl = TaskDL(dsets.train, bs=4, shuffle=False)
    assert [t is not None for t in dl.encoded_targets()] == [True, True]
    assert dl.encoded_targets() is dl.encoded_targets()
    b = dl.one_batch()
    assert isinstance(b[1], TensorCategory) and b[1].tolist() == [0, 1, -1, 0]
    close(b[0][:3], [1., 2., 3.]); assert b[0][3].isnan()
    assert [dl.create_item(i)[1].item() for i in range(4)] == [0, 1, -1, 0]
    assert type(dl.create_item(2)[1]) is TensorCategory

# Mutation testing (issue #20): the checks that the surviving mutants of `mutmut run` showed missing
def _two_processes(monkeypatch, peers):
    "Fake a distributed run of two processes: the other one's tensors are `peers`, in the order of the collective calls"
    peers = list(peers)
    def all_gather(xs, x): xs[0].copy_(x); xs[1].copy_(peers.pop(0))
    monkeypatch.setattr(_weighting, '_world', lambda: 2)
    monkeypatch.setattr(torch.distributed, 'all_reduce', lambda x: x.add_(peers.pop(0)))
    monkeypatch.setattr(torch.distributed, 'all_gather', all_gather)
    return peers

# Loss
class _Recording(Weighting):
    def terms(self, losses, counts):
        self.seen = (losses, counts, self.parts)
        return super().terms(losses, counts)

def test_the_weighting_gets_each_tasks_loss_count_and_part():
    preds, targs = _batch()
    w = _Recording()
    lf = MultiTaskLoss(_tasks(), weighting=w)
    assert lf.weighting is w
    close(lf(preds, *targs), (tensor_([1., 2., 0.5])*_expected(preds, targs)).sum())
    losses, counts, parts = w.seen
    close(counts, [3., 3., 6.])
    assert isinstance(parts, list) and len(parts) == 3
    close(torch.stack(parts), _expected(preds, targs))
    assert w.parts is None  # set only while `terms` runs

def test_a_task_with_one_labelled_item_has_that_items_loss():
    preds, targs = _batch()
    lf = MultiTaskLoss(_tasks())
    lf(preds, tensor_([-1, -1, 2, -1]), *targs[1:])
    close(lf.task_counts[0], 1.)
    close(lf.task_losses[0], F.cross_entropy(preds[0][[2]], tensor_([2])))

def test_reduction_none_moves_the_task_weights_to_the_losses_device():
    "A meta tensor stands for a GPU one: the task weights (on the CPU) must follow the losses to their device"
    lf = MultiTaskLoss(Tasks(RegressionTask('r', weight=2., standardize=False), RegressionTask('s', standardize=False)), reduction='none')
    out = lf((torch.ones(2, device='meta'), torch.ones(2, device='meta')), torch.ones(2, device='meta'), torch.ones(2, device='meta'))
    assert out.is_meta and out.shape == (2,)

def test_loss_error_messages_in_full():
    preds, targs = _batch()
    lf = MultiTaskLoss(_tasks())
    with pytest.raises(ValueError, match=r"^The model returned 2 output\(s\) but there are 3 tasks \['c', 'r', 'm'\]: "
                                         r"it must return a tuple with one output per task, in task order$"): lf(preds[:2], *targs)
    with pytest.raises(ValueError, match=r"^Got 2 target\(s\) for 3 tasks \['c', 'r', 'm'\]: build the DataBlock with one block per task "
                                         r"\(`\*tasks\.blocks`\) and `n_inp=1`$"): lf(preds, *targs[:2])
    lf.task_losses = tensor_([1., float('nan'), 3.])
    with pytest.raises(FloatingPointError, match=r"^The loss of task 'r' \(nan\) is not finite, so training stops here rather than go on with "
                       r"garbage: lower the learning rate, look for extreme labels in that task, or clip the gradients$"): lf.check_finite()

# Weightings
def test_equal_weighting_has_weights_one_from_the_start():
    close(_ww(EqualWeighting(), (3., 5.)).weights, [1., 1.])

def test_world_is_the_number_of_processes(monkeypatch):
    assert _metrics._world() == 1
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.distributed, 'get_world_size', lambda: 3)
    assert _metrics._world() == 3

def test_synced_and_gathered_over_two_processes(monkeypatch):
    x = tensor_([1., 3.])
    assert _weighting._synced(x) is x and _weighting._gathered(x) is x  # one process: as they are
    _two_processes(monkeypatch, [tensor_([3., 1.]), tensor_([3., 1.]), tensor_([[5.], [6.]])])
    close(_weighting._synced(x), [4., 4.])
    close(x, [1., 3.])  # a copy is reduced, not `x`
    close(_weighting._synced(x, mean=True), [2., 2.])
    g = _weighting._gathered(tensor_([[1.], [2.]]))
    assert g.shape == (2, 2)
    close(g, [[0.5, 2.5], [1., 3.]])  # the columns of both processes, over 2

def test_global_losses_over_two_processes(monkeypatch):
    losses, counts = tensor_([2., 3., 0.]), tensor_([1., 3., 0.])
    assert _weighting._global_losses(losses, counts) == (losses, counts)
    _two_processes(monkeypatch, [tensor_([0., 1., 0.]), tensor_([0., 5., 0.])])  # the other process: task 'b' has one item of loss 5
    losses, counts = _weighting._global_losses(losses, counts)
    close(counts, [1., 4., 0.])
    close(losses, [2., (3*3 + 5)/4, 0.])

def test_weighting_callback_averages_the_weightings_gradients_over_processes(monkeypatch):
    w = _ww(UncertaintyWeighting())
    cb = WeightingCallback()
    cb.learn = SimpleNamespace(loss_func=SimpleNamespace(weighting=w))
    w.log_vars.grad = tensor_([1., 2.])
    cb.after_backward()
    close(w.log_vars.grad, [1., 2.])  # one process: unchanged
    _two_processes(monkeypatch, [tensor_([3., 0.])])
    cb.after_backward()
    close(w.log_vars.grad, [2., 1.])
    w.log_vars.grad = None
    cb.after_backward()
    assert w.log_vars.grad is None
    cb.learn = SimpleNamespace(loss_func=SimpleNamespace())
    cb.after_backward()  # no weighting: nothing to average

class _Learns(Weighting):
    def before_fit(self, learn): self.learn_seen = learn

def test_weighting_callback_passes_the_learner_and_skips_the_events_a_weighting_lacks():
    w = _Learns(); w.setup(_tasks())
    cb = WeightingCallback()
    cb.learn = SimpleNamespace(loss_func=SimpleNamespace(weighting=w))
    cb.before_fit()
    assert w.learn_seen is cb.learn
    for e in ('before_epoch', 'before_train', 'before_batch', 'after_pred', 'after_backward', 'after_train', 'before_validate', 'after_validate', 'after_fit'):
        getattr(cb, e)()
    assert not w.training

def test_random_loss_weighting_draws_on_the_losses_device():
    w = _ww(RandomLossWeighting()).to('meta')
    assert w(torch.ones(2, device='meta'), torch.ones(2, device='meta')).is_meta

def test_geometric_loss_weighting_of_losses_below_one():
    w = _ww(GeometricLossWeighting())
    close(w(tensor_([0.25, 1.]), tensor_([1., 1.])), 0.5)
    close(w.weights, [0.5/(2*0.25), 0.5/(2*1.)])

def test_log_loss_weighting_eps_in_the_weights():
    close(LogLossWeighting(eps=1.).terms(tensor_([1., 3.]), tensor_([1., 1.]))[1], [1/2, 1/4])

def test_dynamic_weight_average_rates_of_the_last_two_epochs():
    w = _ww(DynamicWeightAverage(temp=2.))
    def epoch(w, *batches):
        w.before_epoch(None)
        for l, c in batches: w(tensor_(l), tensor_(c))
        w.after_train(None)
    epoch(w, ([0.5, 0.8], [2., 1.]))
    close(w.epoch_losses[0], [0.5, 0.8])
    close(w.rate_weights, [1., 1.])
    epoch(w, ([0.25, 0.8], [1., 1.]), ([0.25, 0.8], [3., 1.]))  # means over items: 0.25 and 0.8; rates 0.5 and 1
    close(w.epoch_losses[1], [0.25, 0.8])
    close(w.rate_weights, 2*F.softmax(tensor_([0.5, 1.])/2, 0))
    epoch(w, ([0.2, 0.4], [2., 2.]))  # rates against the epoch before: 0.8 and 0.5
    close(w.rate_weights, 2*F.softmax(tensor_([0.8, 0.5])/2, 0))
    state = w.get_extra_state()
    assert len(state['epoch_losses']) == 2
    close(state['epoch_losses'][0], [0.25, 0.8]); close(state['epoch_losses'][1], [0.2, 0.4])
    w2 = _ww(DynamicWeightAverage(temp=2.))
    w2.load_state_dict(w.state_dict())  # a resumed run: the last two epochs and the weights
    close(w2.rate_weights, w.rate_weights)
    epoch(w2, ([0.1, 0.4], [1., 1.]))
    close(w2.rate_weights, 2*F.softmax(tensor_([0.5, 1.])/2, 0))

def test_dynamic_weightings_warn_of_nothing():
    "Two epochs of two training batches under warnings-as-errors: a softmax without `dim`, say, would warn on every batch"
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for w in (_ww(RandomLossWeighting()), _ww(DynamicWeightAverage()), _ww(FAMO())):
            for _ in range(2):
                if hasattr(w, 'before_epoch'): w.before_epoch(None)
                w(tensor_([1., 2.]), tensor_([1., 1.])); w(tensor_([0.5, 2.]), tensor_([1., 1.]))
                if hasattr(w, 'after_train'): w.after_train(None)

def test_famo_logits_are_not_trained_by_the_loss():
    w = _ww(FAMO())
    losses = tensor_([1., 4.], requires_grad=True)
    w(losses, tensor_([1., 1.])).backward()
    assert w.logits.grad is None and losses.grad is not None

def test_famo_eps():
    w = _ww(FAMO(lr=0.1, gamma=0., eps=0.5))
    loss = w(tensor_([0.1, 0.5]), tensor_([1., 1.]))
    c = 0.5/0.6 + 0.5/1.  # over L + eps
    close(loss, (0.5*math.log(0.6) + 0.5*math.log(1.))/c)
    close(w.weights, [0.5/(c*0.6), 0.5/(c*1.)])
    w(tensor_([0.05, 0.5]), tensor_([1., 1.]))  # 'a's log(L + eps) decreased, from log 0.6 to log 0.55: the first Adam step, of lr
    close(w.logits, [-0.1, 0.1], 1e-4)

def _adam(g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    "One step of Adam on floats: the step and the new moments"
    m, v = b1*m + (1 - b1)*g, b2*v + (1 - b2)*g*g
    return -lr*(m/(1 - b1**t))/(math.sqrt(v/(1 - b2**t)) + eps), m, v

def test_famo_gamma_decays_the_logits():
    w = _ww(FAMO(lr=0.1, gamma=0.5))
    for l in ([1., 4.], [0.5, 4.], [0.5, 4.]): w(tensor_(l), tensor_([1., 1.]))
    g = 0.25*math.log(2.)  # the softmax's Jacobian at 0 times the log-loss decrease (log 2, 0)
    s, m, v = _adam(g, 0., 0., 1, 0.1)
    p = s  # logit 'b' is -p
    s, m, v = _adam(0.5*p, m, v, 2, 0.1)  # no decrease: only the weight decay, gamma*p
    close(w.logits, [p + s, -(p + s)], 1e-6)

def test_famo_state_resumes_the_optimizer():
    w = _ww(FAMO(lr=0.1, gamma=0.))
    for l in ([1., 4.], [0.5, 4.]): w(tensor_(l), tensor_([1., 1.]))
    w2 = _ww(FAMO(lr=0.1, gamma=0.))
    w2.load_state_dict(deepcopy(w.state_dict()))  # as from a checkpoint: the optimizer's moments are not shared with `w`
    close(w2.logits, w.logits); close(w2.prev[0], [0.5, 4.]); assert w2.prev[1].tolist() == [True, True]
    for x in (w, w2): x(tensor_([0.25, 4.]), tensor_([1., 1.]))
    close(w2.logits, w.logits, 1e-7)
    assert w2.opt.state_dict()['state'][0]['step'] == 2

def test_metric_inverse_weighting_multiplies_the_losses():
    w = _ww(MetricInverseWeighting(), (1., 2.))
    w.before_train(None)
    w.after_validate(SimpleNamespace(metrics=[_M(name='a_loss', value=1.), _M(name='b_loss', value=3.)]))
    close(w(tensor_([2., 4.]), tensor_([1., 1.])), 0.5*2 + 2*1.5*4)

# Metrics
def test_task_view_gathers_the_items_of_every_process(monkeypatch):
    preds, targs = _batch()
    calls = []
    def to_detach(b, cpu=True, gather=True):
        calls.append((cpu, gather))
        return tuple(torch.cat([o, o]) for o in b)  # what gathering from two processes with the same batch gives
    monkeypatch.setattr(_metrics, '_world', lambda: 2)
    v = TaskView(SimpleNamespace(pred=preds, yb=targs, to_detach=to_detach), 1, _tasks()[1])
    assert calls == [(False, True)]  # gathered, and kept on the device
    close(v.pred, preds[1][[0, 2, 3, 0, 2, 3]])

def test_task_view_detaches_without_gathering(monkeypatch):
    import fastai.torch_core
    monkeypatch.setattr(fastai.torch_core, 'maybe_gather', lambda x, axis=0: torch.cat([x, x]))  # gathering from two processes
    v = TaskView(_learn(*_batch()), 1, _tasks()[1])
    out = v.to_detach(torch.ones(3, requires_grad=True))
    assert out.shape == (3,) and not out.requires_grad
    meta = torch.ones(3, device='meta')  # a meta tensor cannot be copied to the CPU: it shows whether `to_detach` moves
    assert v.to_detach(meta, cpu=False).is_meta
    with pytest.raises(NotImplementedError): v.to_detach(meta)  # the default: to the CPU

class _Collect(Metric):
    "A metric with state of its own: the values of the targets it saw"
    def __init__(self): self.seen = []
    def reset(self): self.seen.clear()
    def accumulate(self, learn): self.seen += learn.y.tolist()
    @property
    def value(self): return sum(self.seen)

@pytest.mark.parametrize('metric,kind', [
    (accuracy, 'argmax'), (error_rate, 'argmax'), (top_k_accuracy, 'argmax'), (F1Score(), 'argmax'), (MatthewsCorrCoef(), 'argmax'),
    (RocAuc(), 'softmax'), (RocAucBinary(), 'softmax'),
    (accuracy_multi, 'sigmoid'), (partial(accuracy_multi, thresh=0.3), 'sigmoid'), (F1ScoreMulti(), 'sigmoid'), (RocAucMulti(), 'sigmoid'),
    (AccumMetric(lambda p, t: 0., thresh=0.5, activation=ActivationType.No), 'sigmoid'),
    (mae, 'values'), (rmse, 'values'), (R2Score(), 'values'), (PearsonCorrCoef(), 'values'), (ExplainedVariance(), 'values'),
    (Perplexity(), None), (_Collect(), None)])
def test_metric_kind(metric, kind): assert metric_kind(metric) == kind

def test_a_metric_a_task_cannot_measure_is_an_error_naming_both():
    with pytest.raises(ValueError, match=r"^Task 'c' \(CategoryTask\): metric mae compares values, but the task predicts classes; "
                                         r"use accuracy, F1Score\(\), RocAuc\(\), MatthewsCorrCoef\(\)$"): TaskMetric(CategoryTask('c'), 0, mae)
    with pytest.raises(ValueError, match=r"^Task 'r' \(RegressionTask\): metric accuracy is a classification metric \(argmax\), but the task "
                                         r"predicts values; use mae, rmse, R2Score\(\), PearsonCorrCoef\(\), ExplainedVariance\(\)$"):
        TaskMetric(RegressionTask('r'), 0, accuracy)

def test_task_metric_reads_a_binary_tasks_one_logit():
    learn = _learn((tensor_([[2.], [-1.], [0.5], [-3.]]),), (tensor_([1, 0, 0, -1]),))
    for thresh, exp in ((0.5, 2/3), (0.8, 1.)):  # the decision at thresh: logit > log(thresh/(1 - thresh))
        m = TaskMetric(BinaryTask('b', thresh=thresh), 0, accuracy)
        m.reset(); m.accumulate(learn)
        close(m.value, exp)
    v = TaskView(learn, 0, BinaryTask('b'), mk_metric(accuracy))
    close(v.pred, [[0., 2.], [0., -1.], [0., 0.5]])

def test_each_task_metric_has_its_own_copy_of_the_metric():
    learn = _learn((torch.zeros(2), torch.zeros(2)), (tensor_([1., 2.]), tensor_([10., float('nan')])))
    m = _Collect()
    ms = [TaskMetric(RegressionTask(n), i, m) for i, n in enumerate('ab')]
    for tm in ms: tm.reset(); tm.accumulate(learn)
    assert [tm.value for tm in ms] == [3., 10.] and m.seen == []

class _Broken(Metric):
    def __init__(self, error): self.error = error
    def reset(self): pass
    def accumulate(self, learn): raise self.error()
    @property
    def value(self): raise self.error()
    @property
    def name(self): return 'broken'

class _TwoArgs(Exception):
    def __init__(self, a, b): super().__init__(f'{a}/{b}')

def test_task_metric_errors_name_the_task_the_metric_and_where():
    learn = _learn((torch.zeros(3, 2),), (tensor_([0, 1, -1]),))
    m = TaskMetric(CategoryTask('c'), 0, _Broken(lambda: KeyError('bad input')))
    with pytest.raises(KeyError, match=r"^\"Task 'c' \(CategoryTask\): metric broken failed on predictions of shape \(2, 2\) "
                                       r"and targets of shape \(2,\): 'bad input'\"$") as e: m.accumulate(learn)
    assert isinstance(e.value.__cause__, KeyError)
    with pytest.raises(KeyError, match=r"^\"Task 'c' \(CategoryTask\): metric broken failed over the epoch: 'bad input'\"$"): m.value
    m = TaskMetric(CategoryTask('c'), 0, _Broken(lambda: _TwoArgs(1, 2)))  # an error type that takes no message: a RuntimeError
    with pytest.raises(RuntimeError, match=r"^Task 'c' \(CategoryTask\): metric broken failed over the epoch: 1/2$"): m.value

# Labels
def test_label_transforms_default_to_no_task_name():
    assert [t.task for t in (TaskColReader('a'), TaskCategorize(), TaskBinarize(), TaskMultiCategorize(), TaskRegressionSetup())] == [''] * 5
    with pytest.raises(ValueError, match=r"^Task '': label column 'a' is not in the data, whose columns are \['b'\]$"): TaskColReader('a')({'b': 1})

def test_py_gives_plain_python_values():
    assert type(_py(np.float64(2.5))) is float and _py(np.float64(2.5)) == 2.5
    assert _py((np.int64(1), tensor_([2, 3]))) == [1, [2, 3]]
    tfm = _setup(TaskRegressionSetup(task='r'), [1.])
    with pytest.raises(ValueError, match=r"^Task 'r': expected a finite number, got inf$"): tfm(np.float64('inf'))

def test_label_error_messages_in_full():
    with pytest.raises(ValueError, match=r"^Task 'c': the labels mix types that cannot be ordered \(\['int', 'str'\]\), e.g. \[1, 'a'\]; "
                                         r"make the column one type, e.g. `df\[col\]\.astype\(str\)`$"): _setup(TaskCategorize(task='c'), ['a', 1])
    with pytest.raises(ValueError, match=r"^Task 'c': the validation set has labels \[2, 'z'\] that the training set does not have, so the model "
                                         r"cannot learn them; the training labels are \['a'\]\. Put items with every label in the training set "
                                         r"\(e\.g\. a stratified split\), or drop those rows$"): _setup(TaskCategorize(task='c'), ['a'], ['z', 2, None])
    with pytest.raises(ValueError, match=r"^Task 'c': the data has labels \[2, 'z'\] that are not in the vocab given to the task, \['a'\]: "
                                         r"add them to `vocab=`, or drop those rows$"): _setup(TaskCategorize(vocab=['a'], task='c'), ['a', 'z', 2])

def test_label_checks_run_at_the_training_setup_only():
    items = L(['a', 'z']); items.valid = L(['y'])
    tfm = TaskCategorize(vocab=['a', 'b'], task='c'); tfm.setup(items)  # not a training setup: no check
    assert list(tfm.vocab) == ['a', 'b']
    tfm = TaskCategorize(task='c'); tfm.setup(items)
    assert list(tfm.vocab) == ['a', 'z']
    tfm = TaskRegressionSetup(task='r'); tfm.setup(L([1., 'x']))
    assert tfm.c == 1
    tfm = TaskCategorize(vocab=['a', 'b'], task='c'); tfm.setup(None, train_setup=True)  # a given vocab needs no items
    assert tfm.c == 2

def test_the_vocab_comes_from_the_training_part():
    items = L(['a', 'b', 'c']); items.train = L(['a', 'b']); items.valid = L(['a'])
    tfm = TaskCategorize(task='c'); tfm.setup(items, train_setup=True)
    assert list(tfm.vocab) == ['a', 'b']

def test_task_regression_setup_counts_the_values_per_item():
    assert _setup(TaskRegressionSetup(task='r'), [1., 2.]).c == 1
    assert _setup(TaskRegressionSetup(task='r'), [[1., 2.], [3., 4.]]).c == 2

def test_task_binarize():
    tfm = _setup(TaskBinarize(task='b'), ['yes', 'no', None, 'yes'])
    assert list(tfm.vocab) == ['no', 'yes'] and tfm.c == 2
    assert tfm('yes') == 1 and tfm('no') == 0 and tfm(None) == -1
    assert list(_setup(TaskBinarize(task='b'), ['b', 'a']).vocab) == ['a', 'b']  # the second in sorted order is positive
    assert list(_setup(TaskBinarize(pos_label='a', task='b'), ['b', 'a']).vocab) == ['b', 'a']  # pos_label last, encoded 1
    assert list(_setup(TaskBinarize(vocab=['no', 'yes'], task='b'), ['yes']).vocab) == ['no', 'yes']
    with pytest.raises(ValueError, match=r"^Task 'b': a binary task needs exactly two labels, got 3: \['a', 'b', 'c'\]; use CategoryTask for more$"):
        _setup(TaskBinarize(task='b'), ['a', 'b', 'c'])
    with pytest.raises(ValueError, match=r"^Task 'b': pos_label 'z' is not one of the labels \['a', 'b'\]$"): _setup(TaskBinarize(pos_label='z', task='b'), ['a', 'b'])

def test_delimiter_warning_shows_three_labels_and_knows_four_delimiters():
    with pytest.warns(UserWarning, match=r"^Task 'm': labels \['a,b', 'a,b,c', 'a,c'\] look like several labels joined by ',', but label_delim "
                                         r"is ' ': pass `label_delim=','` if they are$"):
        _setup(TaskMultiCategorize(task='m'), ['a', 'b', 'c', 'a,b', 'a,c', 'b,c', 'a,b,c'])  # four joined labels, the first three named
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        _setup(TaskMultiCategorize(task='m'), ['a', 'b', 'aXb', 'a-b', 'a_b', 'a+b'])  # only , ; | and space are taken for delimiters

def test_only_a_tasks_targets_are_encoded_at_once():
    df = pd.DataFrame({'a': ['x', 'y', 'x']})
    assert _encoded_targets(TfmdLists(df, [ColReader('a'), Categorize()])) is None  # no task transform
    assert _encoded_targets(TfmdLists(df, [TaskColReader('a', task='a'), Categorize()])) is None  # a task name without a kind: not a task's type transform
    tl = TfmdLists(df, [ColReader('a'), TaskCategorize(task='a')])
    t = _encoded_targets(tl)
    assert t[0].tolist() == [0, 1, 0] and _encoded_targets(tl) is t  # computed once
    per_item = TaskCategorize(task='a'); per_item.per_item = True
    assert _encoded_targets(TfmdLists(df, [ColReader('a'), per_item])) is None
    assert _task_tfm(None) is None and _task_tfm([1, 2]) is None

def test_encode_targets_of_one_item():
    t, typ = encode_targets(_tl(pd.DataFrame({'a': ['x']}), TaskCategorize(task='a')))
    assert t.tolist() == [0] and typ is TensorCategory

def test_encode_targets_keys_labels_by_type_and_value():
    calls = []
    def tfm(o): calls.append(o); return torch.tensor(float(o))
    tl = TfmdLists(pd.DataFrame({'a': pd.Series([1, 1.0, True, 1], dtype=object)}), [ColReader('a'), tfm])
    calls.clear()
    encode_targets(tl)
    assert [type(o) for o in calls] == [int, float, bool]  # equal values of other types are encoded on their own
    tl = TfmdLists(pd.DataFrame({'a': [float('nan'), 1., float('nan'), float('nan')]}), [ColReader('a'), tfm])
    calls.clear()
    t, _ = encode_targets(tl)
    assert len(calls) == 2 and t[[0, 2, 3]].isnan().all()  # every missing label is one key

_reads = []
class _CountingReader(ColReader):
    def _do_one(self, r, c): _reads.append(c); return super()._do_one(r, c)

class _Times10(Transform):
    split_idx = 0  # on the training set only
    def encodes(self, o): return o*10

def test_task_dl_reads_each_column_once():
    df = pd.DataFrame({'x': [1., 2., 3., 4.], 'a': ['p', 'q', 'p', None]})
    dsets = Datasets(df, [[_CountingReader('x'), _Times10()], [_CountingReader('a'), TaskCategorize(task='a')], [lambda r: r['x'] + 1]],
                     splits=[[0, 1, 2], [3]])
    dl = TaskDL(dsets.train, bs=3, shuffle=False)
    cols, targs = dl.columns(), dl.encoded_targets()
    assert cols[0][0] == [1., 2., 3.] and cols[1] is None and cols[2] is None  # read once: the getter's output of each training item
    assert targs[0] is None and targs[1][0].tolist() == [0, 1, 0] and targs[2] is None
    assert dl.columns() is cols and _read_column(dl.dataset.tls[0]) is cols[0]
    _reads.clear()
    items = [dl.create_item(i) for i in range(3)]
    assert _reads == []  # neither column is read again
    assert [(float(x), int(a), y) for x, a, y in items] == [(10., 0, 2.), (20., 1, 3.), (30., 0, 4.)] == [
        (float(x), int(a), y) for x, a, y in (dsets.train[i] for i in range(3))]
    assert type(items[0][1]) is TensorCategory
    assert [(float(x), int(a), y) for x, a, y in [dl.create_item(None)]] == [(10., 0, 2.)]  # fastai's DataLoader: item 0
    vdl = TaskDL(dsets.valid, bs=1, shuffle=False)
    assert [(float(x), int(a), y) for x, a, y in [vdl.create_item(0)]] == [(4., -1, 5.)]  # the validation pipeline: no _Times10
    plain = TaskDL([1, 2, 3, 4], bs=2, shuffle=False)  # no parts to read
    assert plain.encoded_targets() == [] and plain.columns() == [] and plain.create_item(2) == 3
    assert plain.one_batch().tolist() == [1, 2]

# Loss: the reduction check
def test_multi_task_loss_reduction_error_in_full():
    with pytest.raises(ValueError) as e: MultiTaskLoss(_tasks(), reduction='sum')
    assert str(e.value) == "MultiTaskLoss: reduction must be 'mean' (each task's mean loss, combined) or 'none' (one loss per item), got 'sum'"

# Tasks (mutation testing of `tasks.py`)

def test_task_defaults():
    t = CategoryTask('c')
    assert (t.weight, t.lr_mult, t.wd, t.head, t.sort, t.vocab) == (1., 1., None, None, True, None)
    assert t.loss_func.reduction == 'none' and list(t.metrics) == [accuracy]
    r = RegressionTask('r')
    assert (r.n_out, r.y_range, r.standardize, r.unit, r.mean, r.std) == (1, None, True, None, 0., 1.)
    m = MultiCategoryTask('m')
    assert (m.label_delim, m.thresh) == (' ', 0.5)

def test_task_arguments_are_kept():
    lf, h, getter = LabelSmoothingCrossEntropyFlat(), nn.Linear(2, 3), ColReader('other')
    t = CategoryTask('c', weight=2., getter=getter, loss_func=lf, metrics=[mae], head=h, lr_mult=0.5, wd=0.1)
    assert (t.weight, t.getter, t.loss_func, t.head, t.lr_mult, t.wd, list(t.metrics)) == (2., getter, lf, h, 0.5, 0.1, [mae])
    assert lf.reduction == 'none'
    b = BinaryTask('b', weight=3., pos_label='y', thresh=0.7)
    assert (b.weight, b.pos_label, b.thresh, b.loss_func.thresh) == (3., 'y', 0.7, 0.7)

def test_a_tasks_default_getter_reads_its_column():
    t = RegressionTask('size')
    assert t.getter(pd.Series({'size': 3., 'b': 1.})) == 3.
    with pytest.raises(ValueError, match=r"^Task 'size': label column 'size' is not in the data, whose columns are \['a'\]$"):
        t.getter(pd.Series({'a': 1.}))

@pytest.mark.parametrize('kw, msg', [
    (dict(weight=-1.), "weight must be a finite number >= 0, got -1.0"), (dict(weight=float('inf')), "weight must be a finite number >= 0, got inf"),
    (dict(weight=float('nan')), "weight must be a finite number >= 0, got nan"), (dict(weight=True), "weight must be a finite number >= 0, got True"),
    (dict(weight='1'), "weight must be a finite number >= 0, got '1'"), (dict(lr_mult=-0.5), "lr_mult must be a finite number >= 0, got -0.5"),
    (dict(wd=-1e-2), "wd must be a finite number >= 0, got -0.01")])
def test_task_argument_errors_in_full(kw, msg):
    with pytest.raises(ValueError) as e: CategoryTask('c', **kw)
    assert str(e.value) == f"Task 'c': {msg}"

def test_task_name_and_loss_errors_in_full():
    for name in ('a b', 1, '1a', ''):
        with pytest.raises(ValueError) as e: CategoryTask(name)
        assert str(e.value) == f"Task name must be a Python identifier (it names columns, heads and metrics), got {name!r}"
    class _NoReduction:
        def __repr__(self): return 'NoReduction()'
    with pytest.raises(TypeError) as e: CategoryTask('c', loss_func=_NoReduction())
    assert str(e.value) == "Task 'c': loss_func must be a fastai or PyTorch loss with a `reduction` attribute, got NoReduction()"

def test_a_pytorch_loss_has_no_activation_or_decoding():
    t = RegressionTask('r', loss_func=nn.L1Loss())
    x = torch.tensor([1., -2.])
    assert t.activation(x) is x and t.decodes(x) is x and t.loss_func.reduction == 'none'

def test_check_pred_errors_in_full():
    t = CategoryTask('c'); t.n_out = 3
    with pytest.raises(TypeError) as e: t.check_pred([1., 2.], torch.tensor([0]))
    assert str(e.value) == "Task 'c': the model's output is a list, expected a tensor"
    t.check_pred(torch.zeros(1, 3), torch.tensor([0]))  # one item
    with pytest.raises(ValueError) as e: t.check_pred(torch.zeros(1, 2), torch.tensor([0]))
    assert str(e.value) == ("Task 'c': the model's output has shape (1, 2), expected 3 output(s) for each of the 1 items, shape (1, 3); "
                            "check the task's head")

def test_task_setup_reads_vocab_then_c():
    m = MultiCategoryTask('m')
    m.setup(SimpleNamespace(vocab=['a', 'b'], c=5))
    assert (m.vocab, m.n_out) == (['a', 'b'], 2)  # the vocab's length comes first
    m.setup(SimpleNamespace(c=3))
    assert (m.vocab, m.n_out) == (None, 3)
    m.setup(SimpleNamespace())
    assert (m.vocab, m.n_out) == (None, None)
    tl = TfmdLists(['b', 'a', 'c'], [TaskCategorize(task='c')])
    c = CategoryTask('c'); c.setup(tl)
    assert list(c.vocab) == ['a', 'b', 'c'] and c.n_out == 3

def _linears(head): return [(l.in_features, l.out_features) for l in head.modules() if isinstance(l, nn.Linear)]

def test_task_create_head():
    h = nn.Linear(8, 3)
    assert CategoryTask('c', head=h).create_head(8) is h
    t = CategoryTask('c')
    with pytest.raises(ValueError) as e: t.create_head(8)
    assert str(e.value) == "Task 'c' has no number of outputs yet: call `tasks.setup(dls)` first"
    t.n_out = 3
    assert _linears(t.create_head(8)) == [(16, 512), (512, 3)]  # fastai's head: concatenated average and max pooling
    assert _linears(t.create_head(8, concat_pool=False, lin_ftrs=[4])) == [(8, 4), (4, 3)]

def test_type_transforms_of_the_tasks():
    assert list(_setup(CategoryTask('c').type_tfm(), ['b', 'a']).vocab) == ['a', 'b']  # sorted by default
    tfm = _setup(CategoryTask('c', sort=False).type_tfm(), ['b', 'a'])
    assert list(tfm.vocab) == ['b', 'a'] and tfm.task == 'c' and tfm.kind == 'category'
    with pytest.raises(ValueError, match=r"^Task 'c': the data has labels \['z'\] that are not in the vocab given to the task, \['a', 'b'\]"):
        _setup(CategoryTask('c', vocab=['a', 'b']).type_tfm(), ['a', 'z'])
    tfm = _setup(MultiCategoryTask('m').type_tfm(), ['b a', 'a;c'])
    assert list(tfm.vocab) == ['a', 'a;c', 'b'] and tfm.task == 'm'
    tfm = _setup(MultiCategoryTask('m', label_delim=';').type_tfm(), ['b a', 'a;c'])
    assert list(tfm.vocab) == ['a', 'b a', 'c']
    assert list(_setup(MultiCategoryTask('m', vocab=['y', 'x']).type_tfm(), ['x']).vocab) == ['y', 'x']
    tfm = _setup(BinaryTask('b', pos_label='no').type_tfm(), ['yes', 'no'])
    assert list(tfm.vocab) == ['yes', 'no'] and tfm.task == 'b' and tfm.kind == 'binary'
    with pytest.raises(ValueError, match=r"^Task 'b': the data has labels \['z'\]"): _setup(BinaryTask('b', vocab=['n', 'y']).type_tfm(), ['z'])
    tfm = RegressionTask('r', n_out=2).type_tfm()
    assert tfm.task == 'r' and tfm(None).shape == (2,) and RegressionTask('r').type_tfm()(None).shape == ()

def test_binary_task_setup_activation_and_decodes():
    b = BinaryTask('b')
    b.setup(TfmdLists(['y', 'n'], [TaskBinarize(task='b')]))
    assert list(b.vocab) == ['n', 'y'] and b.n_out == 1
    act = b.activation(torch.tensor([0., math.log(3.)]))
    close(act, [[0.5, 0.5], [0.25, 0.75]]); assert act.shape == (2, 2)
    close(b.activation(torch.tensor([[math.log(3.)]])), [[0.25, 0.75]])
    probs = torch.tensor([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])
    assert b.decodes(probs).tolist() == [0, 1, 0]  # 0.5 is not above thresh
    assert BinaryTask('b', thresh=0.85).decodes(probs).tolist() == [0, 0, 0]

def test_destandardize():
    d = Destandardize([1, 2], [10, 20])
    assert {k: v.dtype for k, v in d.named_buffers()} == {'mean': torch.float32, 'std': torch.float32}
    close(d.mean, [1., 2.]); close(d.std, [10., 20.])
    close(d(torch.tensor([[1., -1.], [0., 0.5]])), [[11., -18.], [1., 12.]])

def test_check_unit():
    assert check_unit('r', 'kg') == 'kg' and check_unit('r', None) is None
    for unit in ('', '  ', 3):
        with pytest.raises(ValueError) as e: check_unit('r', unit)
        assert str(e.value) == f"Task 'r': unit must name the units of its values, e.g. unit='kg', or be None; got {unit!r}"
    assert RegressionTask('r', unit='kg').unit == 'kg'
    with pytest.raises(ValueError, match=r"^Task 'w': unit must name"): RegressionTask('w', unit=' ')

def test_regression_task_setup_standardises():
    r = RegressionTask('r')
    r.setup(TfmdLists([1., 2., None, 1.5], [TaskRegressionSetup(task='r')]))  # not a DataFrame column: encoded item by item
    assert r.n_out == 1 and r.mean.shape == () and r.std.shape == ()
    close(r.mean, 1.5); close(r.std, math.sqrt(1/6))
    r2 = RegressionTask('r', n_out=2)
    tl = _tl(pd.DataFrame({'a': [[1., 10.], [2., 10.], [float('nan')]*2]}), TaskRegressionSetup(c=2, task='r'))
    r2.setup(tl)
    assert r2.n_out == 2
    close(r2.mean, [1.5, 10.]); close(r2.std, [0.5, 1.])  # a constant column keeps std 1
    r3 = RegressionTask('r', standardize=False)
    r3.setup(TfmdLists([4., 6.], [TaskRegressionSetup(task='r')]))
    assert (r3.mean, r3.std, r3.n_out) == (0., 1., 1)

def test_regression_task_setup_reads_the_encoded_targets():
    tl = _tl(pd.DataFrame({'a': [1., 3., 3.]}), TaskRegressionSetup(task='r'))
    assert _encoded_targets(tl) is not None
    tl._after_item = lambda o: pytest.fail('the per-item pipeline ran')
    r = RegressionTask('r'); r.setup(tl)
    close(r.mean, 7/3); close(r.std, math.sqrt(8/9))

def test_regression_task_setup_errors_in_full():
    r = RegressionTask('r')
    with pytest.raises(ValueError) as e: r.setup(L())  # (fastai's setup of an empty training set fails before)
    assert str(e.value) == "Task 'r': the training set is empty; it needs at least one labelled training item"
    with pytest.raises(ValueError) as e: r.setup(TfmdLists([None, ''], [TaskRegressionSetup(task='r')]))
    assert str(e.value) == "Task 'r': every value in the training set is missing"

def test_regression_loss_inputs_standardise_with_cached_stats():
    r = RegressionTask('r')
    p, y = r.loss_inputs(torch.tensor([3.]), torch.tensor([5.]))
    close(p, [3.]); close(y, [5.])  # mean 0, std 1 before any setup
    r.mean, r.std = np.float64(2.), np.float64(4.)
    p, y = r.loss_inputs(torch.tensor([6.]), torch.tensor([10.]))
    close(p, [1.]); close(y, [2.])
    like = torch.zeros(1)
    a = r._stats(like)
    assert r._stats(like)[0] is a[0] and r._stats(like)[1] is a[1]  # copied once
    assert [t.dtype for t in r._stats(like.double())] == [torch.float64] * 2
    assert [t.dtype for t in r._stats(like.half())] == [torch.float16] * 2
    r.mean = np.float64(3.)  # a new mean only
    close(r._stats(like)[0], 3.); close(r._stats(like)[1], 4.)
    r.std = np.float64(5.)  # a new std only
    close(r._stats(like)[1], 5.)
    state = r.__getstate__()
    assert '_stats_cache' in r.__dict__ and set(state) == set(r.__dict__) - {'_stats_cache'}
    assert '_stats_cache' not in pickle.loads(pickle.dumps(r)).__dict__

def test_regression_task_create_head():
    h = nn.Linear(8, 1)
    assert RegressionTask('r', head=h).create_head(8) is h
    r = RegressionTask('r'); r.mean, r.std = np.float64(2.), np.float64(3.)
    head = r.create_head(8, concat_pool=False, lin_ftrs=[4]).eval()
    assert [type(l) for l in head][1:] == [Destandardize, Flatten] and head[2].full is True
    assert _linears(head) == [(8, 4), (4, 1)]
    close(head[1].mean, 2.); close(head[1].std, 3.)
    x = torch.randn(5, 8, 2, 2)
    assert head(x).shape == (5,)
    close(head(x), head[0](x).view(-1)*3 + 2)
    s = RegressionTask('s', y_range=(0., 10.)); s.n_out = 2
    head = s.create_head(8).eval()
    assert len(head) == 2 and isinstance(head[1], SigmoidRange) and (head[1].low, head[1].high) == (0., 10.)
    assert head(x).shape == (5, 2) and _linears(head) == [(16, 512), (512, 2)]

def test_tasks_errors_in_full():
    with pytest.raises(ValueError) as e: Tasks()
    assert str(e.value) == "Tasks needs at least one task, e.g. Tasks(CategoryTask('gender'), RegressionTask('age'))"
    with pytest.raises(TypeError) as e: Tasks(CategoryTask('a'), 3)
    assert str(e.value) == "Tasks takes Task objects (CategoryTask, MultiCategoryTask, RegressionTask), got [3]"
    with pytest.raises(ValueError) as e: Tasks(CategoryTask('b'), RegressionTask('a'), RegressionTask('c'), CategoryTask('a'), MultiCategoryTask('b'))
    assert str(e.value) == "Task names must be unique, got ['a', 'b'] more than once"

def test_tasks_repr_and_lookup():
    a, b = CategoryTask('a'), RegressionTask('b', weight=2.)
    tasks = Tasks(a, b)
    assert repr(tasks) == "Tasks(CategoryTask('a', weight=1.0), RegressionTask('b', weight=2.0))"
    assert tasks['b'] is b and tasks['a'] is a and tasks[1] is b and list(tasks) == [a, b]
    with pytest.raises(KeyError) as e: tasks['z']
    assert e.value.args == ("No task named 'z'; the tasks are ['a', 'b']",)

_df = pd.DataFrame({'x': [1., 2., 3., 4.], 'c': ['a', 'b', 'a', 'b'], 'r': [1., 3., None, 5.]})

def _dls(tasks, df=_df, blocks=None):
    return DataBlock(blocks=(RegressionBlock(), *(blocks or tasks.blocks)), get_x=ColReader('x'), get_y=tasks.getters, n_inp=1,
                     splitter=IndexSplitter([3])).dataloaders(df, bs=2)

def test_tasks_targets_and_setup():
    tasks = Tasks(CategoryTask('c'), RegressionTask('r'))
    dls = _dls(tasks)
    tls = tasks.targets(dls)
    assert len(tls) == 2 and list(tls[0].vocab) == ['a', 'b'] and len(tls[1]) == 3  # the training part
    tasks.setup(dls)
    assert list(tasks['c'].vocab) == ['a', 'b'] and tasks['c'].n_out == 2
    close(tasks['r'].mean, 2.); close(tasks['r'].std, 1.); assert tasks['r'].n_out == 1
    tasks['c'].n_out = 7
    tasks.setup(dls)
    assert tasks['c'].n_out == 7  # once per DataLoaders
    tasks.setup(_dls(tasks))
    assert tasks['c'].n_out == 2  # new DataLoaders: set up again
    state = tasks.__getstate__()
    assert '_source' in tasks.__dict__ and set(state) == set(tasks.__dict__) - {'_source'}
    assert pickle.loads(pickle.dumps(tasks)).names == ['c', 'r']

def test_tasks_targets_errors_in_full():
    dls = _dls(Tasks(CategoryTask('c'), RegressionTask('r')))
    with pytest.raises(ValueError) as e: Tasks(CategoryTask('c'), RegressionTask('r'), MultiCategoryTask('m')).targets(dls)
    assert str(e.value) == ("The DataLoaders have 2 targets but there are 3 tasks ['c', 'r', 'm']: build the DataBlock with "
                            "`blocks=(<input block>, *tasks.blocks)`, `get_y=tasks.getters` and `n_inp=1`")
    with pytest.raises(ValueError) as e: Tasks(CategoryTask('c'), RegressionTask('s')).targets(dls)
    assert str(e.value) == ("The DataLoaders were built for the tasks ['c:category', 'r:regression'] but the tasks here are "
                            "['c:category', 's:regression']: build the DataLoaders and the learner from the same `Tasks`")
    tasks = Tasks(CategoryTask('c'), RegressionTask('r'))
    plain = _dls(tasks, blocks=(CategoryBlock(), tasks.blocks[1]))  # fastai's CategoryBlock: not made by a task
    assert len(tasks.targets(plain)) == 2
    with pytest.raises(ValueError) as e: Tasks(CategoryTask('c'), BinaryTask('r')).targets(plain)
    assert str(e.value) == ("The DataLoaders were built for the tasks ['?', 'r:regression'] but the tasks here are "
                            "['c:category', 'r:binary']: build the DataLoaders and the learner from the same `Tasks`")

def test_tasks_check_compares_the_vocabs():
    tasks = Tasks(CategoryTask('c'), RegressionTask('r'))
    dls = _dls(tasks)
    tasks.check(dls)  # not set up yet: no vocab to compare
    tasks.setup(dls)
    tasks.check(dls)
    other = _dls(Tasks(CategoryTask('c'), RegressionTask('r')), _df.assign(c=['a', 'b', 'z', 'a']))
    with pytest.raises(ValueError) as e: tasks.check(other)
    assert str(e.value) == ("Task 'c': the DataLoaders' labels ['a', 'b', 'z'] are not the ones the model was built for, ['a', 'b']: "
                            "build the DataLoaders with the learner's tasks (`learn.tasks`), or make a new learner")
