"`compare_single_task` end to end: its single-task learners are the learners one builds by hand, for vision and tabular data."
import numpy as np, pandas as pd, pytest
from conftest import require
from fastai.vision.all import resnet18, DataBlock, ImageBlock, ColReader, ColSplitter, Path
from fastai_mtl.all import (Tasks, CategoryTask, RegressionTask, make_shapes, mtl_learner, mtl_tabular_learner,
                            mtl_tabular_dataloaders, compare_single_task, set_seeds, delta_m)

def _shapes_dls(path, df, tasks):
    return DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('fname', pref=path), get_y=tasks.getters,
                     splitter=ColSplitter('is_valid')).dataloaders(df, bs=16)

def _by_hand(dls, tasks, learner, *args, fit='fine_tune', lr=2e-3, **kwargs):
    set_seeds(42, dls)
    learn = learner(dls, *args, tasks, **kwargs)
    with learn.no_bar(): getattr(learn, fit)(1, lr)
    return learn.recorder.values

def test_vision_single_task_learners_equal_hand_built(tmp_path):
    df = make_shapes(tmp_path, n=96, img_size=32, seed=0)
    df.loc[np.random.default_rng(0).random(len(df)) < .3, 'color'] = None      # color: 30% of its labels missing
    df['is_valid'] = np.arange(len(df)) % 4 == 0
    names = ('shape', 'color', 'size')
    make = dict(shape=CategoryTask, color=CategoryTask, size=RegressionTask)
    tasks = Tasks(*[make[n](n) for n in names])
    res = compare_single_task(_shapes_dls(tmp_path, df, tasks), tasks, resnet18, epochs=1, lr=2e-3, pretrained=False)
    for name in names:
        one = Tasks(make[name](name))
        labelled = df[df[name].notna()]
        assert len(res.learners[name].dls.train_ds) == (~labelled.is_valid).sum()
        assert _by_hand(_shapes_dls(tmp_path, labelled, one), one, mtl_learner, resnet18, pretrained=False) == res.learners[name].recorder.values
    assert _by_hand(_shapes_dls(tmp_path, df, tasks), tasks, mtl_learner, resnet18, pretrained=False) == res.learners['multi'].recorder.values
    metrics = ['shape_accuracy', 'color_accuracy', 'size_mae']
    assert res.delta_m == pytest.approx(delta_m(dict(res.table.multi[metrics]), dict(res.table.single[metrics])))
    assert res.costs.loc['params', 'ratio'] < .5              # one body instead of three

def test_tabular_with_given_single_task_dls():
    palmerpenguins = require('palmerpenguins')
    df = palmerpenguins.load_penguins().dropna(subset=['bill_length_mm']).reset_index(drop=True)
    splits = (list(range(0, len(df), 4)), [i for i in range(len(df)) if i % 4])
    splits = splits[1], splits[0]
    cat = ['island']
    def dls_for(tasks, frame):
        idx = {i: j for j,i in enumerate(frame.index)}
        return mtl_tabular_dataloaders(frame.reset_index(drop=True), tasks, cat_names=cat, bs=32,
                                       splits=[[idx[i] for i in s if i in idx] for s in splits],
                                       cont_names=['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm'])
    tasks = Tasks(CategoryTask('species'), CategoryTask('sex'))
    single = {n: dls_for(Tasks(CategoryTask(n)), df[df[n].notna()]) for n in tasks.names}
    with pytest.raises(TypeError, match='single_dls'):
        compare_single_task(dls_for(tasks, df), tasks, learner=mtl_tabular_learner, epochs=1)
    res = compare_single_task(dls_for(tasks, df), tasks, learner=mtl_tabular_learner, schedule='fit_one_cycle', epochs=1, lr=1e-2,
                              single_dls=single)
    for n in tasks.names:
        one = Tasks(CategoryTask(n))
        assert _by_hand(dls_for(one, df[df[n].notna()]), one, mtl_tabular_learner, fit='fit_one_cycle', lr=1e-2) == res.learners[n].recorder.values
    assert set(res.table.index) == {'species_accuracy', 'species_loss', 'sex_accuracy', 'sex_loss'}
