"Bad input, tried systematically: each case raises a clear error that names the task or column and what was expected."
import math, warnings
import pytest
import numpy as np, pandas as pd, torch
from torch import nn
from PIL import UnidentifiedImageError
from fastai.vision.all import resnet18, set_seed, load_learner, DataBlock, ImageBlock, ColReader, IndexSplitter
from fastai_mtl.all import (Tasks, CategoryTask, MultiCategoryTask, RegressionTask, make_shapes, shapes_dataloaders, mtl_learner,
                            mtl_tabular_dataloaders, mtl_tabular_learner)

# ---- data: 64 generated 32-px images, and a small table

@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    path = tmp_path_factory.mktemp('bad_shapes')
    return path, make_shapes(path, n=64, img_size=32, seed=1)

def img_tasks(): return Tasks(CategoryTask('shape'), RegressionTask('size'))

def img_dls(shapes, tasks=None, df=None, **kwargs):
    path, df0 = shapes
    return shapes_dataloaders(path, df0 if df is None else df, tasks or img_tasks(), bs=16, num_workers=0, **kwargs)

def img_learner(shapes, tasks=None, dls=None, **kwargs):
    tasks = tasks or img_tasks()
    set_seed(0)
    return mtl_learner(dls or img_dls(shapes, tasks), resnet18, tasks, pretrained=False, lin_ftrs=[16], **kwargs)

@pytest.fixture(scope='module')
def learn(shapes): return img_learner(shapes)

def table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(dict(a=rng.normal(size=n), b=rng.normal(size=n), c=rng.choice(['x', 'y'], n),
                             kind=rng.choice(['p', 'q'], n), level=rng.normal(10, 2, size=n)))

def tab_tasks(): return Tasks(CategoryTask('kind'), RegressionTask('level'))
def tab_dls(df=None, tasks=None, **kwargs):
    return mtl_tabular_dataloaders(table() if df is None else df, tasks or tab_tasks(), cat_names=['c'], cont_names=['a', 'b'], bs=8, **kwargs)

@pytest.fixture(scope='module')
def tab_learn():
    tasks = tab_tasks()
    set_seed(0)
    return mtl_tabular_learner(tab_dls(tasks=tasks, seed=0), tasks, layers=[8])

def quiet_fit(learn, n=1, lr=1e-3):
    with learn.no_bar(), learn.no_logging(): learn.fit(n, lr)

# ---- the tasks themselves

def test_zero_tasks():
    with pytest.raises(ValueError, match=r"Tasks needs at least one task, e\.g\. Tasks\(CategoryTask\('gender'\)"): Tasks()

def test_duplicate_task_names():
    with pytest.raises(ValueError, match=r"Task names must be unique, got \['a'\] more than once"): Tasks(CategoryTask('a'), RegressionTask('a'))

@pytest.mark.parametrize('weight', [-1, '1', math.nan, math.inf, True, None], ids=['negative', 'string', 'nan', 'inf', 'bool', 'none'])
def test_bad_weight(weight):
    with pytest.raises(ValueError, match=rf"Task 'a': weight must be a finite number >= 0, got {weight!r}"): CategoryTask('a', weight=weight)

def test_not_a_task():
    with pytest.raises(TypeError, match=r"Tasks takes Task objects \(CategoryTask, MultiCategoryTask, RegressionTask\), got \['color'\]"):
        Tasks(CategoryTask('shape'), 'color')

def test_task_name_not_identifier():
    with pytest.raises(ValueError, match=r"Task name must be a Python identifier .* got 'my task'"): CategoryTask('my task')

# ---- label columns and their values

def test_unknown_label_column_images(shapes):
    with pytest.raises(ValueError, match=r"Task 'colour': label column 'colour' is not in the data, whose columns are \['fname', 'shape', 'color', 'size', 'marks'\]"):
        img_dls(shapes, Tasks(CategoryTask('colour')))

def test_unknown_label_column_table():
    with pytest.raises(ValueError, match=r"Task 'grade': column 'grade' is not in the DataFrame, whose columns are \['a', 'b', 'c', 'kind', 'level'\]"):
        tab_dls(tasks=Tasks(CategoryTask('grade')))

def test_strings_in_regression_task(shapes):
    with pytest.raises(ValueError, match=r"Task 'color': expected a number, got '(red|green|blue)'"): img_dls(shapes, Tasks(RegressionTask('color')))
    with pytest.raises(ValueError, match=r"Task 'kind': expected a number, got '[pq]'"): tab_dls(tasks=Tasks(RegressionTask('kind')))

def test_infinite_regression_label(shapes):
    df = shapes[1].copy()
    df.loc[3, 'size'] = np.inf
    with pytest.raises(ValueError, match=r"Task 'size': expected a finite number, got inf"): img_dls(shapes, df=df)

def test_unseen_validation_category_fails_at_setup(shapes):
    path, df = shapes
    df = df.copy()
    df.loc[60:, 'shape'] = 'hexagon'
    tasks = img_tasks()
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('fname', pref=path), get_y=tasks.getters,
                       splitter=IndexSplitter(range(56, 64)))
    with pytest.raises(ValueError, match=r"Task 'shape': the validation set has labels \['hexagon'\] that the training set does not have.*"
                                         r"the training labels are \['circle', 'square', 'triangle'\]"):
        dblock.dataloaders(df, bs=16)

def test_unseen_validation_label_in_label_sets(shapes):
    path, df = shapes
    df = df.copy()
    df.loc[60:, 'marks'] = 'dot star'
    tasks = Tasks(MultiCategoryTask('marks'))
    dblock = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=ColReader('fname', pref=path), get_y=tasks.getters,
                       splitter=IndexSplitter(range(56, 64)))
    with pytest.raises(ValueError, match=r"Task 'marks': the validation set has labels \['star'\] that the training set does not have"):
        dblock.dataloaders(df, bs=16)

def test_unseen_validation_category_table():
    df = table()
    df.loc[35:, 'kind'] = 'r'
    with pytest.raises(ValueError, match=r"Task 'kind': label 'r' is not one of the training labels \['p', 'q'\]"):
        tab_dls(df, splits=(list(range(30)), list(range(30, 40))))

def test_all_missing_task(shapes):
    with pytest.raises(ValueError, match=r"Task 'shape': every label in the training set is missing; it needs at least one labelled training item"):
        img_dls(shapes, df=shapes[1].assign(shape=None))
    with pytest.raises(ValueError, match=r"Task 'level': every value in the training set is missing"):
        tab_learn_for(table().assign(level=np.nan))

def tab_learn_for(df):
    tasks = tab_tasks()
    return mtl_tabular_learner(tab_dls(df, tasks=tasks, seed=0), tasks, layers=[8])

def test_empty_dataframe():
    with pytest.raises(ValueError, match=r"The DataFrame has no rows: it needs rows with the inputs and the columns of the tasks \['kind', 'level'\]"):
        tab_dls(table().iloc[:0])

def test_empty_training_split():
    with pytest.raises(ValueError, match=r"Task 'kind': the training set is empty; it needs at least one labelled training item"):
        tab_dls(splits=([], list(range(40))))

def test_label_set_of_wrong_type(shapes):
    with pytest.raises(TypeError, match=r"Task 'marks': expected a list of labels or a string of labels separated by ' ', got 3\.0"):
        img_dls(shapes, Tasks(MultiCategoryTask('marks')), df=shapes[1].assign(marks=3.))

def test_label_sets_with_another_delimiter_warn(shapes):
    df = shapes[1].assign(marks=shapes[1].marks.str.replace(' ', ','))
    with pytest.warns(UserWarning, match=r"Task 'marks': labels \['border,dot', .*\] look like several labels joined by ',', but label_delim is ' ': pass `label_delim=','`"):
        img_dls(shapes, Tasks(MultiCategoryTask('marks')), df=df)

# ---- models and learners

def test_custom_head_with_wrong_output_size(shapes):
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 5))
    learn = img_learner(shapes, Tasks(CategoryTask('shape', head=head), RegressionTask('size')))
    with pytest.raises(ValueError, match=r"Task 'shape': the model's output has shape \(16, 5\), expected 3 output\(s\) for each of the 16 items, shape \(16, 3\)"):
        quiet_fit(learn)

class OneOutput(nn.Module):
    "A custom head that forgets the size task"
    def __init__(self): super().__init__(); self.shape = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 3))
    def forward(self, x): return (self.shape(x),)

def test_model_with_fewer_outputs_than_tasks(shapes):
    learn = img_learner(shapes, custom_head=OneOutput())
    with pytest.raises(ValueError, match=r"The model returned 1 output\(s\) but there are 2 tasks \['shape', 'size'\]: it must return a tuple with one output per task"):
        quiet_fit(learn)

def test_learner_tasks_differ_from_dataloaders(shapes):
    dls = img_dls(shapes)
    with pytest.raises(ValueError, match=r"The DataLoaders were built for the tasks \['shape:category', 'size:regression'\] but the tasks here are "
                                         r"\['color:category', 'size:regression'\]: build the DataLoaders and the learner from the same `Tasks`"):
        img_learner(shapes, Tasks(CategoryTask('color'), RegressionTask('size')), dls=dls)
    with pytest.raises(ValueError, match=r"'size:category'"): img_learner(shapes, Tasks(CategoryTask('shape'), CategoryTask('size')), dls=dls)
    with pytest.raises(ValueError, match=r"The DataLoaders have 2 targets but there are 1 tasks \['shape'\]"): img_learner(shapes, Tasks(CategoryTask('shape')), dls=dls)

def test_unknown_weighting(shapes, learn):
    with pytest.raises(ValueError, match=r"Unknown weighting 'uncertanty': use one of \['static', 'equal', 'uncertainty'"):
        img_learner(shapes, dls=learn.dls, weighting='uncertanty')

def test_unknown_split_at(shapes, learn):
    with pytest.raises(ValueError, match=r"split_at='layer9' is not a top-level layer of the model; its layers are \['conv1', 'bn1'"):
        img_learner(shapes, dls=learn.dls, split_at='layer9')

def test_non_finite_loss_stops_training_with_the_task(tab_learn):
    learn = tab_learn
    state = {k: v.clone() for k,v in learn.model.state_dict().items()}
    with torch.no_grad():
        for p in learn.model[1].heads['level'].parameters(): p.fill_(math.nan)
    try:
        with pytest.raises(FloatingPointError, match=r"The loss of task 'level' \(nan\) is not finite, so training stops here"): quiet_fit(learn)
        assert (learn.epoch, learn.iter) == (0, 0)   # at the first batch, read where fastai's Recorder copies the loss anyway
    finally: learn.model.load_state_dict(state)

# ---- files and prediction

def test_corrupt_image_file(shapes, learn):
    path, df = shapes
    (path/'images/corrupt.png').write_bytes(b'not a png')
    with pytest.raises(UnidentifiedImageError, match=r"cannot identify image file .*corrupt\.png"): learn.predict(path/'images/corrupt.png')
    dls = img_dls(shapes, df=df.assign(fname=df.fname.where(df.index != 5, 'images/corrupt.png')))   # fails when its batch is loaded
    ds = dls.train_ds if 5 in dls.train_ds.items.index else dls.valid_ds
    with pytest.raises(UnidentifiedImageError, match=r"cannot identify image file .*corrupt\.png"): ds[list(ds.items.index).index(5)]

def test_predict_item_of_wrong_type(learn):
    with pytest.raises(TypeError, match=r"`predict` takes items of the types the DataLoaders read \(Series, Path, str, .*\), got float 3\.5"):
        learn.predict(3.5)
    with pytest.raises(TypeError, match=r"`predict_df` takes items of the types the DataLoaders read .* got dict"): learn.predict_df([{'fname': 'x.png'}])

def test_predict_table_row_of_wrong_type_or_columns(tab_learn):
    with pytest.raises(TypeError, match=r"`predict` takes a DataFrame row \(`df.iloc\[i\]`\) or a dict of column values, got list"): tab_learn.predict([1., 2., 'x'])
    with pytest.raises(ValueError, match=r"The rows to predict lack the input columns \['b'\]: the model's inputs are \['c', 'a', 'b'\]"):
        tab_learn.predict(dict(a=1., c='x'))

def test_loaded_learner_with_other_data(tab_learn, tmp_path):
    tab_learn.export(tmp_path/'model.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = load_learner(tmp_path/'model.pkl')
    test = learn.predict_df(table(5, seed=1))                                             # the learner's own data still works
    assert list(test.columns) == ['kind', 'level']
    learn.dls = tab_dls(table().rename(columns={'kind': 'grade'}), Tasks(CategoryTask('grade'), RegressionTask('level')), seed=0)
    with pytest.raises(ValueError, match=r"The DataLoaders were built for the tasks \['grade:category', 'level:regression'\] but the tasks here are \['kind:category', 'level:regression'\]"):
        quiet_fit(learn)
    learn.dls = tab_dls(table().assign(kind='p'), seed=0)                                    # same tasks, but only one of the two classes
    with pytest.raises(ValueError, match=r"Task 'kind': the DataLoaders' labels \['p'\] are not the ones the model was built for, \['p', 'q'\]"):
        quiet_fit(learn)
