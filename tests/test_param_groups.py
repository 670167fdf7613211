"Per-task learning rates and weight decay (`Task(lr_mult=, wd=)`): a parameter group per head that fastai's schedules drive, freeze/fine_tune, tabular and U-Net learners, serialization."
import warnings
import numpy as np, pandas as pd, pytest, torch
from torch import nn
from fastai.vision.all import ConvLayer, Callback, set_seed, load_learner, RandomSplitter
from fastai_mtl.all import (make_shapes, shapes_dataloaders, mtl_learner, mtl_unet_learner, save_mtl, load_mtl, Tasks, CategoryTask,
                            RegressionTask, MultiCategoryTask, TaskOptimizer)
from fastai_mtl.tabular import mtl_tabular_dataloaders, mtl_tabular_learner
from unet_data import rectangles, rect_dls, tiny_encoder
from fastai_mtl.dense import SegmentationTask

def _tasks(): return Tasks(CategoryTask('shape'), CategoryTask('color', lr_mult=0.1, wd=0.5), RegressionTask('size', lr_mult=0))
def _body(): return nn.Sequential(ConvLayer(3, 8, stride=2), ConvLayer(8, 16, stride=2), nn.AdaptiveAvgPool2d(1))
BODY, COLOR, SIZE, HEADS = 0, 1, 2, 3     # the optimizer's groups: the body, color's head, size's head, the other heads (shape's)

class Hypers(Callback):
    "Each training batch's learning rate and weight decay of every group, and whether the body's first convolution trains"
    def __init__(self): self.lrs, self.wds, self.body_trains = [], [], []   # across fits: both phases of fine_tune
    def before_step(self):
        self.lrs.append([h['lr'] for h in self.opt.hypers]); self.wds.append([h['wd'] for h in self.opt.hypers])
        self.body_trains.append(self.learn.model[0][0][0].weight.requires_grad)

def _fit(learn, how, *args, **kwargs):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        getattr(learn, how)(*args, **kwargs)

@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    path = tmp_path_factory.mktemp('shapes')
    return path, make_shapes(path, n=96, img_size=32, seed=3)

def _learner(shapes, **kwargs):
    path, df = shapes
    tasks = _tasks()
    set_seed(0, reproducible=True)
    dls = shapes_dataloaders(path, df, tasks, bs=16, num_workers=0)
    return mtl_learner(dls, _body(), tasks, pretrained=False, lin_ftrs=[], path=path, **kwargs)

def _params(m): return [p.detach().clone() for p in m.parameters()]
def _moved(before, m): return any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))

def test_one_cycle_keeps_each_heads_lr_mult(shapes):
    learn = _learner(shapes)
    heads = learn.model[1].heads
    groups = learn.splitter(learn.model)
    assert [len(g) for g in groups] == [len(list(m.parameters())) for m in (learn.model[0], heads['color'], heads['size'], heads['shape'])]
    assert [set(map(id, groups[i])) for i in (COLOR, HEADS)] == [set(map(id, heads[n].parameters())) for n in ('color', 'shape')]
    size0, shape0, body0 = _params(heads['size']), _params(heads['shape']), _params(learn.model[0])
    rec = Hypers()
    _fit(learn, 'fit_one_cycle', 2, 1e-2, cbs=rec)
    lrs = np.array(rec.lrs)
    assert lrs[:, HEADS].max() == pytest.approx(1e-2) and lrs[:, HEADS].max()/lrs[:, HEADS].min() > 20   # fastai's one cycle ran
    np.testing.assert_allclose(lrs[:, COLOR], 0.1*lrs[:, HEADS], rtol=1e-9)                             # at every batch
    np.testing.assert_allclose(lrs[:, BODY], lrs[:, HEADS], rtol=1e-9)
    assert (lrs[:, SIZE] == 0).all()
    assert all(w == [0.01, 0.5, 0.01, 0.01] for w in rec.wds)                                             # Adam's default wd, color's own
    assert not _moved(size0, heads['size']) and _moved(shape0, heads['shape']) and _moved(body0, learn.model[0])
    assert isinstance(learn.opt, TaskOptimizer)
    assert learn.recorder.lrs[-1] == pytest.approx(lrs[-1, HEADS])        # the recorder (and lr_find) read the heads' base rate

def test_freeze_and_fine_tune_freeze_the_body_only(shapes):
    learn = _learner(shapes)
    learn.freeze()
    assert not learn.model[0][0][0].weight.requires_grad
    assert all(p.requires_grad for p in learn.model[1].parameters())   # every head, with a group of its own or not
    conv0, color0 = learn.model[0][0][0].weight.detach().clone(), _params(learn.model[1].heads['color'])
    rec = Hypers()
    _fit(learn, 'fit_one_cycle', 1, 1e-2, cbs=rec)
    assert torch.equal(conv0, learn.model[0][0][0].weight) and _moved(color0, learn.model[1].heads['color'])
    rec = Hypers()
    _fit(learn, 'fine_tune', 1, 1e-2, freeze_epochs=1, cbs=rec)
    lrs, trains = np.array(rec.lrs), np.array(rec.body_trains)
    assert trains.any() and not trains.all()                            # frozen, then unfrozen
    np.testing.assert_allclose(lrs[:, COLOR], 0.1*lrs[:, HEADS], rtol=1e-9)
    # fine_tune: slice(base_lr) frozen, then slice(base_lr/100, base_lr) over the splitter's two groups, the heads' groups following
    np.testing.assert_allclose(lrs[trains, BODY], lrs[trains, HEADS]/100, rtol=1e-9)
    np.testing.assert_allclose(lrs[~trains, BODY], lrs[~trains, HEADS]/10, rtol=1e-9)
    assert learn.model[0][0][0].weight.requires_grad

def test_lr_find_and_export_keep_working(shapes, tmp_path):
    learn = _learner(shapes)
    with warnings.catch_warnings(), learn.no_bar():
        warnings.simplefilter('ignore')
        res = learn.lr_find(num_it=10, show_plot=False)
    assert 1e-7 < res.valley < 10
    learn.export(tmp_path/'m.pkl')
    loaded = load_learner(tmp_path/'m.pkl')
    assert loaded.tasks['color'].lr_mult == 0.1 and loaded.tasks['color'].wd == 0.5

def test_save_mtl_load_mtl_keep_lr_mult_and_wd(shapes, tmp_path):
    learn = _learner(shapes)
    save_mtl(learn, tmp_path/'m')
    loaded = load_mtl(tmp_path/'m', arch=_body())
    assert [(t.lr_mult, t.wd) for t in loaded.tasks] == [(1., None), (0.1, 0.5), (0., None)]

def test_custom_head_with_lr_mult_is_a_clear_error(shapes):
    class Two(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 7))
        def forward(self, x): y = self.lin(x); return y[:, :3], y[:, 3:6], y[:, 6]
    learn = _learner(shapes, custom_head=Two())
    with pytest.raises(ValueError, match=r"Task 'color' has lr_mult=0.1 and wd=0.5 for its head, but the model has no `MultiHead`"): learn.create_opt()

def test_tabular_heads_get_their_groups():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(dict(a=rng.normal(size=200), b=rng.normal(size=200)))
    df['y'], df['c'] = 2*df.a + df.b, np.where(df.b > 0, 'p', 'n')
    tasks = Tasks(RegressionTask('y', lr_mult=0.5), CategoryTask('c', lr_mult=0))
    dls = mtl_tabular_dataloaders(df, tasks, cont_names=['a', 'b'], splits=RandomSplitter(seed=0)(df), bs=32)
    learn = mtl_tabular_learner(dls, tasks, layers=[16])
    c0 = _params(learn.model[1].heads['c'])
    rec = Hypers()
    rec.before_step = lambda: rec.lrs.append([h['lr'] for h in learn.opt.hypers])
    _fit(learn, 'fit_one_cycle', 1, 1e-2, cbs=rec)
    lrs = np.array(rec.lrs)                               # trainable_params is one group: the y head, the c head, then the rest
    assert lrs.shape[1] == 3
    np.testing.assert_allclose(lrs[:, 0], 0.5*lrs[:, 2]); assert (lrs[:, 1] == 0).all()
    assert not _moved(c0, learn.model[1].heads['c'])

def test_unet_dense_head_gets_its_group():
    df = rectangles(32, seed=0)
    tasks = Tasks(SegmentationTask('seg', codes=['background', 'red', 'green'], lr_mult=0.2), CategoryTask('color'))
    set_seed(0, reproducible=True)
    learn = mtl_unet_learner(rect_dls(tasks, df), tiny_encoder(), tasks, pretrained=False, lin_ftrs=[16])
    rec = Hypers()
    rec.before_step = lambda: rec.lrs.append([h['lr'] for h in learn.opt.hypers])
    _fit(learn, 'fit_one_cycle', 1, 1e-2, cbs=rec)
    lrs = np.array(rec.lrs)
    assert lrs.shape[1] == 3                               # the encoder, seg's 1x1 head, the decoder and the other heads
    np.testing.assert_allclose(lrs[:, 1], 0.2*lrs[:, 2])
    learn.freeze()
    assert all(p.requires_grad for p in learn.model[1].heads['seg'].parameters())

@pytest.mark.parametrize('how', ['MMoE', 'CrossStitch', 'split_at'])
def test_soft_sharing_and_split_at_heads_get_their_groups(shapes, how):
    "With experts, cross-stitched columns or a split body, a task's group holds its own head (with `split_at`: its copy of the body's rest)"
    from fastai.vision.all import resnet18
    from fastai_mtl.all import MMoE, CrossStitch
    path, df = shapes
    tasks = _tasks()
    dls = shapes_dataloaders(path, df, tasks, bs=16, num_workers=0)
    kw = dict(split_at=-1) if how == 'split_at' else dict(sharing=dict(MMoE=MMoE, CrossStitch=CrossStitch)[how]())
    learn = mtl_learner(dls, resnet18, tasks, pretrained=False, lin_ftrs=[], **kw)
    learn.create_opt()
    learn.opt.set_hyper('lr', slice(1e-4, 1e-2))
    lrs = [h['lr'] for h in learn.opt.hypers]
    n = learn.opt.n_base
    assert len(lrs) == n + 2 and lrs[-1] == pytest.approx(1e-2) and lrs[0] == pytest.approx(1e-4)
    assert lrs[n-1:n+1] == pytest.approx([1e-3, 0.])                       # color's and size's heads, after the splitter's groups but the last
    group = {id(p) for p in learn.opt.param_lists[n-1]}
    assert group == {id(p) for p in learn.model[1].heads['color'].parameters()}
    learn.freeze()
    assert all(p.requires_grad for p in learn.model[1].heads.parameters())
