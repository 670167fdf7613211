"Tabular multi-task learning end to end: penguins (two category tasks, one with missing labels, and a regression), a label-set task, sin/cos from x, export/load, bad inputs."
import subprocess, sys
from unittest import mock
import numpy as np, pandas as pd, pytest, torch
import palmerpenguins
from fastai.tabular.all import RandomSplitter, ColReader, TabularDataLoaders, Categorify, FillMissing, Normalize, set_seed, tabular_config
from fastai_mtl.tasks import Tasks, CategoryTask, MultiCategoryTask, RegressionTask
from fastai_mtl.tabular import mtl_tabular_dataloaders, mtl_tabular_learner, MTLTabularLearner

CAT_NAMES, CONT_NAMES = ['island'], ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm']

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "Small tabular models train fastest on one CPU thread (and far faster when other processes share the cores)"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def penguin_tasks(): return Tasks(CategoryTask('species'), CategoryTask('sex'), RegressionTask('body_mass_g'))

@pytest.fixture(scope='module')
def penguins(tmp_path_factory):
    "(learner trained on the penguins, DataFrame, training rows, validation rows)"
    df = palmerpenguins.load_penguins()
    splits = RandomSplitter(seed=1)(df)
    tasks = penguin_tasks()
    dls = mtl_tabular_dataloaders(df, tasks, cat_names=CAT_NAMES, cont_names=CONT_NAMES, splits=splits, bs=32, val_bs=128)
    set_seed(42, reproducible=True)
    learn = mtl_tabular_learner(dls, tasks, path=tmp_path_factory.mktemp('penguins'))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(20, 1e-2)
    return learn, df, df.iloc[list(splits[0])], df.iloc[list(splits[1])]

def shown(f, *args, **kwargs):
    "The DataFrames that `f(*args, **kwargs)` displays (with fastai's `display_df`)"
    frames = []
    def grab(df, *a, **k): frames.append(df.copy()); return ''
    with mock.patch.object(pd.DataFrame, 'to_html', autospec=True, side_effect=grab): f(*args, **kwargs)
    return frames

def test_penguins_beat_constant_guesses(penguins):
    learn, df, train, valid = penguins
    assert isinstance(learn, MTLTabularLearner)
    assert valid.sex.isna().any() and valid.body_mass_g.isna().any(), "the validation rows should have missing labels"
    preds = learn.predict_df(valid)
    known_sex, known_mass = valid.sex.notna(), valid.body_mass_g.notna()
    # Measured with this seed: species 0.96 (majority 0.49), sex 0.82 (majority 0.40), mass MAE 0.43 of the mean's
    for name, right, least in (('species', preds.species == valid.species, 0.9), ('sex', (preds.sex == valid.sex)[known_sex], 0.7)):
        majority = train[name].mode()[0]
        baseline = (valid[name] == majority)[valid[name].notna()].mean()
        assert right.mean() > max(least, baseline + 0.1), (name, right.mean(), baseline)
    mae = (preds.body_mass_g - valid.body_mass_g)[known_mass].abs().mean()
    mean_mae = (train.body_mass_g.mean() - valid.body_mass_g)[known_mass].abs().mean()
    assert mae < 0.55*mean_mae, (mae, mean_mae)
    recorded = learn.history.df.iloc[-1]
    assert recorded.species_accuracy == pytest.approx((preds.species == valid.species).mean())

def test_masked_sex_is_never_a_class(penguins):
    learn, df, train, valid = penguins
    assert list(learn.tasks['sex'].vocab) == ['female', 'male']
    assert learn.tasks['sex'].n_out == 2
    targets = learn.dls.valid_ds.items
    assert ((targets.sex == -1) == valid.sex.isna().values).all()
    assert (targets.body_mass_g.isna() == valid.body_mass_g.isna().values).all()
    unlabelled = df[df.sex.isna()]
    assert set(learn.predict_df(unlabelled).sex) <= {'female', 'male'}
    probs, targs = learn.get_preds(dl=learn.dls.test_dl(unlabelled))
    assert probs[1].shape == (len(unlabelled), 2) and (targs[1] == -1).all()

def test_show_batch_and_results(penguins):
    learn, df, train, valid = penguins
    x_names = list(learn.dls.x_names)
    assert x_names == CAT_NAMES + [f'{c}_na' for c in CONT_NAMES] + CONT_NAMES
    batch = shown(learn.dls.valid.show_batch, max_n=100)[0]
    assert list(batch.columns) == x_names + ['species', 'sex', 'body_mass_g']
    assert len(batch) == len(valid)
    assert batch.species.tolist() == valid.species.tolist()
    assert (batch.sex == '#na#').tolist() == valid.sex.isna().tolist()
    assert (batch.body_mass_g == '#na#').tolist() == valid.body_mass_g.isna().tolist()
    res = shown(learn.show_results, max_n=100, shuffle=False)[0]
    assert list(res.columns) == x_names + ['species', 'species_pred', 'sex', 'sex_pred', 'body_mass_g', 'body_mass_g_pred']
    assert (res.sex == '#na#').tolist() == valid.sex.isna().tolist()
    assert set(res.sex_pred) <= {'female', 'male'}
    assert res.species_pred.tolist() == learn.predict_df(valid).species.tolist()

def test_predict_row(penguins):
    learn, df, train, valid = penguins
    row, pred = learn.predict(df.iloc[3], with_input=True)
    assert list(pred) == ['species', 'sex', 'body_mass_g']
    assert [type(v) for v in pred.values()] == [str, str, float]
    assert pred['species'] in learn.tasks['species'].vocab
    assert torch.isclose(pred.probs['sex'].sum(), torch.tensor(1.))
    assert row.island == 'Torgersen' and row.bill_length_mm_na
    table = learn.predict_df(df.iloc[[3]], with_probs=True)
    assert table.loc[3, 'species'] == pred['species']
    assert table.loc[3, 'body_mass_g'] == pytest.approx(pred['body_mass_g'], rel=1e-5)
    unseen = df.iloc[0].copy()
    unseen['species'] = 'Emperor'
    assert learn.predict(unseen) == learn.predict(df.iloc[0])

def test_export_load_in_fresh_process(penguins, tmp_path):
    learn, df, train, valid = penguins
    learn.export(tmp_path/'penguins.pkl')
    valid.to_csv(tmp_path/'valid.csv', index=False)
    preds, _ = learn.get_preds(dl=learn.dls.test_dl(valid))
    table = learn.predict_df(valid.reset_index(drop=True), with_probs=True)
    script = f"""
import pandas as pd, torch
from fastai.learner import load_learner
learn = load_learner({str(tmp_path/'penguins.pkl')!r})
assert type(learn).__name__ == 'MTLTabularLearner', type(learn)
items = pd.read_csv({str(tmp_path/'valid.csv')!r})
preds, _ = learn.get_preds(dl=learn.dls.test_dl(items))
torch.save(preds, {str(tmp_path/'loaded_preds.pt')!r})
learn.predict_df(items, with_probs=True).to_csv({str(tmp_path/'loaded.csv')!r}, index=False)
"""
    res = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = torch.load(tmp_path/'loaded_preds.pt')
    assert all(torch.equal(a, b) for a,b in zip(preds, loaded)), "predictions differ after export/load_learner"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'loaded.csv'), table, check_exact=False, rtol=1e-6, check_dtype=False)

def test_sin_cos_from_x():
    rng = np.random.default_rng(0)
    x = rng.uniform(-np.pi, np.pi, 2000)
    df = pd.DataFrame(dict(x=x, sin=np.sin(x), cos=np.cos(x)))
    tasks = Tasks(RegressionTask('sin'), RegressionTask('cos'))
    dls = mtl_tabular_dataloaders(df, tasks, seed=0)
    assert list(dls.cont_names) == ['x'] and list(dls.cat_names) == []
    set_seed(0, reproducible=True)
    learn = mtl_tabular_learner(dls, tasks, config=tabular_config(use_bn=False, bn_cont=False))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(15, 1e-2)
    valid = df.iloc[list(dls.valid_ds.items.index)]
    preds = learn.predict_df(valid)
    for name in ('sin', 'cos'):
        mae = (preds[name] - valid[name]).abs().mean()
        assert mae < 0.05, (name, mae)

def test_multi_category_task_with_missing_label_sets():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 300)
    tags = [' '.join(t for t,c in (('pos', v > 0), ('big', abs(v) > 1)) if c) or 'small' for v in x]
    df = pd.DataFrame(dict(x=x, tags=tags, y=x**2))
    df.loc[::10, 'tags'] = None
    tasks = Tasks(MultiCategoryTask('tags'), RegressionTask('y'))
    dls = mtl_tabular_dataloaders(df, tasks, seed=0, bs=32)
    _, _, targ, _ = dls.test_dl(df.iloc[:3]).one_batch()
    assert targ.shape == (3, 3) and targ[0].isnan().all() and not targ[1:].isnan().any()
    set_seed(0, reproducible=True)
    learn = mtl_tabular_learner(dls, tasks, layers=[50, 50])
    assert sorted(tasks['tags'].vocab) == ['big', 'pos', 'small']
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8, 1e-2)
    assert learn.history.df.iloc[-1].tags_accuracy_multi > 0.85
    pred = learn.predict(df.iloc[1])
    assert isinstance(pred['tags'], list) and set(pred['tags']) <= {'big', 'pos', 'small'}
    res = shown(learn.show_results, max_n=100, shuffle=False)[0]
    assert list(res.columns) == ['x', 'tags', 'tags_pred', 'y', 'y_pred']
    valid = df.loc[dls.valid_ds.items.index]
    assert (res.tags == '#na#').tolist() == valid.tags.isna().tolist()[:len(res)]

def test_bad_inputs_name_the_task_or_column():
    df = palmerpenguins.load_penguins()
    splits = RandomSplitter(seed=1)(df)
    def dls(tasks, data=df, **kwargs): return mtl_tabular_dataloaders(data, tasks, **{**dict(cat_names=CAT_NAMES, cont_names=CONT_NAMES, splits=splits), **kwargs})
    with pytest.raises(ValueError, match="Task 'mass': column 'mass' is not in the DataFrame"): dls(Tasks(RegressionTask('mass')))
    with pytest.raises(ValueError, match="Task 'island': column 'island' is also an input"): dls(Tasks(CategoryTask('island')))
    with pytest.raises(ValueError, match=r"Input columns \['beak'\] are not in the DataFrame"): dls(Tasks(CategoryTask('species')), cat_names=['beak'])
    with pytest.raises(ValueError, match="Task 'kind': in a table a task reads one column"): dls(Tasks(CategoryTask('kind', getter=ColReader(['species', 'sex']))))
    bad = df.copy()
    bad.loc[splits[1][0], 'species'] = 'Emperor'
    with pytest.raises(ValueError, match="Task 'species': label 'Emperor' is not one of the training labels"): dls(Tasks(CategoryTask('species')), bad)
    with pytest.raises(ValueError, match="Task 'sex': every label in the training set is missing"): dls(Tasks(CategoryTask('sex')), df.assign(sex=None))
    with pytest.raises(ValueError, match="y_range"): mtl_tabular_learner(dls(penguin_tasks()), penguin_tasks(), config=tabular_config(y_range=(0, 1)))
    single = TabularDataLoaders.from_df(df, procs=[Categorify, FillMissing, Normalize], cat_names=CAT_NAMES, cont_names=CONT_NAMES, y_names='species')
    with pytest.raises(TypeError, match="mtl_tabular_dataloaders"): mtl_tabular_learner(single, Tasks(CategoryTask('species')))
