"Whole-epoch metrics bound to tasks (ROC-AUC, F1, MCC, R2, Pearson, Dice, Jaccard): equal to scikit-learn's on the labelled items of the same predictions."
import warnings
import numpy as np, pandas as pd, pytest, torch
from scipy.stats import pearsonr
from sklearn.metrics import roc_auc_score, f1_score, matthews_corrcoef, r2_score, explained_variance_score
from fastai.tabular.all import RandomSplitter, set_seed
from fastai.metrics import RocAuc, RocAucBinary, RocAucMulti, F1Score, F1ScoreMulti, MatthewsCorrCoef, R2Score, PearsonCorrCoef, \
    ExplainedVariance, accuracy, Dice, JaccardCoeff, DiceMulti
from fastai_mtl.all import Tasks, CategoryTask, BinaryTask, MultiCategoryTask, RegressionTask, SegmentationTask, MeanIoU, mtl_unet_learner
from fastai_mtl.tabular import mtl_tabular_dataloaders, mtl_tabular_learner
from unet_data import rectangles, rect_dls, tiny_encoder

def _fit(learn, n, lr):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit_one_cycle(n, lr)

def _table(n=400, seed=0):
    "Three numeric inputs; a 3-class, a 2-class, a binary, a label-set and a numeric target, each with 20% missing"
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(dict(a=rng.normal(size=n), b=rng.normal(size=n), c=rng.normal(size=n)))
    noise = lambda: rng.normal(scale=0.7, size=n)
    df['cat3'] = pd.cut(df.a + 0.5*df.b + noise(), [-np.inf, -0.5, 0.5, np.inf], labels=['lo', 'mid', 'hi']).astype(object)
    df['cat2'] = np.where(df.b + noise() > 0, 'p', 'n').astype(object)
    df['bin'] = np.where(df.c + noise() > 0, 'yes', 'no').astype(object)
    df['marks'] = [' '.join(l for l,v in (('x', a > 0), ('y', b > 0), ('w', c > 0.5)) if v) for a,b,c in zip(df.a + noise(), df.b + noise(), df.c)]
    df['reg'] = 3*df.a - df.c + noise() + 10
    for i,col in enumerate(['cat3', 'cat2', 'bin', 'marks', 'reg']): df.loc[df.sample(frac=0.2, random_state=i).index, col] = None
    return df

TABULAR = dict(cat3=(CategoryTask, dict(metrics=[RocAuc(), F1Score(average='macro'), MatthewsCorrCoef()])),
               cat2=(CategoryTask, dict(metrics=[RocAucBinary(), RocAuc(), F1Score(), MatthewsCorrCoef()])),
               bin=(BinaryTask, dict(thresh=0.4, metrics=[RocAucBinary(), RocAuc(), F1Score(), MatthewsCorrCoef(), accuracy])),
               marks=(MultiCategoryTask, dict(metrics=[RocAucMulti(), RocAuc(), F1ScoreMulti()])),
               reg=(RegressionTask, dict(metrics=[R2Score(), PearsonCorrCoef(), ExplainedVariance()])))

@pytest.fixture(scope='module')
def tabular():
    df = _table()
    tasks = Tasks(*[cls(name, **kw) for name,(cls,kw) in TABULAR.items()])
    set_seed(0, reproducible=True)
    dls = mtl_tabular_dataloaders(df, tasks, cont_names=['a', 'b', 'c'], splits=RandomSplitter(seed=1)(df), bs=64)
    learn = mtl_tabular_learner(dls, tasks)
    _fit(learn, 3, 1e-2)
    return learn, list(learn.recorder.values[-1][2:])   # the last epoch's metrics, before `get_preds` logs its own

def _sklearn(learn):
    "Every task's metrics computed with scikit-learn/scipy from `learn.get_preds()`, on each task's labelled items, in `learn.metrics` order"
    preds,targs = learn.get_preds()
    p,y = dict(zip(learn.tasks.names, preds)),dict(zip(learn.tasks.names, targs))
    known = {n: (y[n] >= 0) if n != 'marks' and n != 'reg' else ~y[n].isnan().view(len(y[n]), -1).any(1) for n in p}
    p,y = {n: p[n][known[n]].numpy() for n in p},{n: y[n][known[n]].numpy() for n in p}
    c3 = p['cat3'].argmax(1)
    c2 = p['cat2'].argmax(1)
    b = (p['bin'][:, 1] > 0.4).astype(int)
    return dict(cat3=[roc_auc_score(y['cat3'], p['cat3'], multi_class='ovr'), f1_score(y['cat3'], c3, average='macro'), matthews_corrcoef(y['cat3'], c3)],
                cat2=[roc_auc_score(y['cat2'], p['cat2'][:, 1])]*2 + [f1_score(y['cat2'], c2), matthews_corrcoef(y['cat2'], c2)],
                bin=[roc_auc_score(y['bin'], p['bin'][:, 1])]*2 + [f1_score(y['bin'], b), matthews_corrcoef(y['bin'], b), (b == y['bin']).mean()],
                marks=[roc_auc_score(y['marks'], p['marks'])]*2 + [f1_score(y['marks'], p['marks'] >= 0.5, average='macro')],
                reg=[r2_score(y['reg'], p['reg']), pearsonr(p['reg'], y['reg'])[0], explained_variance_score(y['reg'], p['reg'])]), known

def test_tabular_metrics_equal_sklearn_on_labelled_items(tabular):
    learn,recorded = tabular
    expected,known = _sklearn(learn)
    assert all((~k).any() for k in known.values()), "every task should have unlabelled validation items"
    names = [m.name for m in learn.metrics]
    for source,values in (('recorder', recorded), ('validate', learn.validate()[1:])):
        got = dict(zip(names, values))
        for task,vals in expected.items():
            mine = [got[m.name] for m in learn.metrics if m.name.startswith(task + '_') and not m.name.endswith('_loss')]
            assert len(mine) == len(vals), (task, mine)
            for g,e in zip(mine, vals): assert g == pytest.approx(e, abs=1e-6), (source, task, mine, vals)
    # Not chance: the data are learnable, so every score is clearly above what a constant predictor gets
    assert min(expected['cat2'][0], expected['bin'][0], expected['marks'][0]) > 0.75 and expected['reg'][0] > 0.5, expected

def test_binary_metrics_see_the_decision_at_thresh(tabular):
    "On a one-logit task, argmax metrics get the decision at the task's `thresh` (0.4 here) and ROC-AUC the probabilities, not constants"
    expected,_ = _sklearn(tabular[0])
    auc,_,f1,mcc,acc = expected['bin']
    assert auc > 0.75 and f1 > 0.5 and mcc > 0.3 and acc > 0.65, expected['bin']

@pytest.mark.parametrize('cls,metric,msg', [
    (MultiCategoryTask, F1Score(), "picks one class per item (argmax), but the task has a set of labels per item; use accuracy_multi, F1ScoreMulti()"),
    (CategoryTask, F1ScoreMulti(), "takes a sigmoid of each output (a multi-label metric), but the task has one label per item; use its single-label version"),
    (RegressionTask, RocAuc(), "is a classification metric (softmax), but the task predicts values; use mae"),
    (BinaryTask, R2Score(), "compares values, but the task predicts classes; use accuracy")])
def test_metric_task_mismatch_is_a_clear_error(cls, metric, msg):
    with pytest.raises(ValueError) as e: Tasks(cls('t', metrics=[metric])).metrics
    assert str(e.value).startswith(f"Task 't' ({cls.__name__}): metric ") and msg in str(e.value), str(e.value)

def test_segmentation_dice_jaccard_on_labelled_pixels():
    "Dice and Jaccard (fastai's, two codes) over the labelled pixels: void pixels and missing masks left out, as computed by hand"
    df = rectangles(64, seed=0)
    df['seg'] = [np.where(m > 0, 1, 0).astype(np.uint8) for m in df.seg]
    for i in range(0, len(df), 4): df.seg[i][:4] = 255             # void pixels in a quarter of the masks
    df['seg'] = df.seg.astype(object); df.loc[df.index[1::8], 'seg'] = None  # missing masks
    tasks = Tasks(SegmentationTask('seg', codes=['background', 'box'], metrics=[Dice(), JaccardCoeff(), DiceMulti(), MeanIoU()]), CategoryTask('color'))
    set_seed(0, reproducible=True)
    learn = mtl_unet_learner(rect_dls(tasks, df), tiny_encoder(), tasks, pretrained=False, lin_ftrs=[32])
    _fit(learn, 3, 1e-2)
    preds,targs = learn.get_preds()
    m = targs[0] >= 0
    assert (~m).any() and m.any()
    p,t = preds[0].argmax(1)[m].numpy(),targs[0][m].numpy()
    inter,total = (p*t).sum(),p.sum() + t.sum()
    per_class = [2*((p == c) & (t == c)).sum()/((p == c).sum() + (t == c).sum()) for c in (0, 1)]
    iou = [((p == c) & (t == c)).sum()/((p == c) | (t == c)).sum() for c in (0, 1)]
    got = dict(zip([m_.name for m_ in learn.metrics], learn.validate()[1:]))
    assert got['seg_dice'] == pytest.approx(2*inter/total, abs=1e-6)
    assert got['seg_jaccard_coeff'] == pytest.approx(inter/(total - inter), abs=1e-6)
    assert got['seg_dice_multi'] == pytest.approx(np.mean(per_class), abs=1e-6)
    assert got['seg_miou'] == pytest.approx(np.mean(iou), abs=1e-6)
    assert got['seg_dice'] > 0.3, got
