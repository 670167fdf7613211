"Inference end to end: predict from a file, batch predictions, export/load in a fresh process, save/load weights."
import subprocess, sys
import numpy as np, pandas as pd, torch
from fastai.vision.all import resnet18, set_seed
from fastai_mtl.all import mtl_learner, shapes_dataloaders, MTLInterpretation
from conftest import shape_tasks

def _trained(shapes, tmp_path):
    path, df = shapes
    tasks = shape_tasks()
    set_seed(7, reproducible=True)
    learn = mtl_learner(shapes_dataloaders(path, df, tasks, bs=32), resnet18, tasks, pretrained=False, lin_ftrs=[64], path=tmp_path)
    with learn.no_bar(): learn.fit_one_cycle(1, 1e-2)
    return learn

def test_predict_file_batch_export_and_weights(shapes, tmp_path):
    path, df = shapes
    learn = _trained(shapes, tmp_path)
    pred = learn.predict(str(path/df.fname[0]))
    assert list(pred) == ['shape', 'color', 'size', 'marks']
    assert isinstance(pred['shape'], str) and pred['shape'] in learn.tasks['shape'].vocab
    assert isinstance(pred['size'], float) and isinstance(pred['marks'], list)
    assert torch.isclose(pred.probs['color'].sum(), torch.tensor(1.))

    items = df.iloc[:50]
    preds, _ = learn.get_preds(dl=learn.dls.test_dl(items))
    assert [len(p) for p in preds] == [50]*4
    table = learn.predict_df(items, with_probs=True)
    assert len(table) == 50 and table.loc[0, 'shape'] == pred['shape']

    learn.export('model.pkl')
    items.to_csv(tmp_path/'items.csv', index=False)
    script = f"""
import pandas as pd, torch
from fastai.vision.all import load_learner
learn = load_learner({str(tmp_path/'model.pkl')!r})
preds, _ = learn.get_preds(dl=learn.dls.test_dl(pd.read_csv({str(tmp_path/'items.csv')!r})))
torch.save(preds, {str(tmp_path/'loaded_preds.pt')!r})
learn.predict_df(pd.read_csv({str(tmp_path/'items.csv')!r}), with_probs=True).to_csv({str(tmp_path/'loaded.csv')!r}, index=False)
"""
    res = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = torch.load(tmp_path/'loaded_preds.pt')
    assert all(torch.equal(a, b) for a,b in zip(preds, loaded)), "predictions differ after export/load_learner"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path/'loaded.csv'), table.reset_index(drop=True), check_exact=True, check_dtype=False)

    learn.save('weights')
    set_seed(99)
    other = mtl_learner(learn.dls, resnet18, shape_tasks(), pretrained=False, lin_ftrs=[64], path=tmp_path)
    other.load('weights')
    preds2, _ = other.get_preds(dl=other.dls.test_dl(items))
    assert all(torch.equal(a, b) for a,b in zip(preds, preds2)), "predictions differ after save/load of weights"

def test_interpretation_per_task(shapes, tmp_path):
    learn = _trained(shapes, tmp_path)
    interp = MTLInterpretation.from_learner(learn)
    for name in ('shape', 'color'):
        assert interp.confusion_matrix(name).shape == (len(learn.tasks[name].vocab),)*2
    losses, idx = interp.top_losses(3, task='marks')
    assert (losses[:-1] >= losses[1:]).all()

def test_one_task_learner_predicts_like_any_other(tmp_path):
    "A learner of one task: fastai's get_preds unwraps 1-tuples (it used to fail in nested_reorder); predict and predict_df still work per task"
    from fastai_mtl.all import make_shapes, shapes_dataloaders, mtl_learner, Tasks, CategoryTask
    from fastai.vision.all import resnet18
    df = make_shapes(tmp_path, n=40, img_size=32)
    tasks = Tasks(CategoryTask('shape'))
    learn = mtl_learner(shapes_dataloaders(tmp_path, df, tasks, bs=16), resnet18, tasks, pretrained=False)
    preds, targs = learn.get_preds(ds_idx=1)
    assert len(preds) == len(targs) == 1 and preds[0].shape == (8, 3)
    out = learn.predict_df(df.iloc[:5])
    assert list(out.columns) == ['shape'] and out['shape'].isin(['circle', 'square', 'triangle']).all()
    assert learn.predict(df.iloc[0])['shape'] in ('circle', 'square', 'triangle')
