"The `fastai-mtl` command, run as a user would."
import io, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest, torch
import fastai_mtl.cli
from fastai_mtl.cli import main

cli = str(Path(sys.executable).parent/'fastai-mtl')

def run(*args, **kwargs): return subprocess.run([cli, *args], capture_output=True, text=True, **kwargs)

def test_demo_writes_history_plot_and_model(tmp_path):
    out = tmp_path/'demo'
    res = run('demo', '--out', str(out), '--n', '96', '--epochs', '1', '--bs', '16')
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ['.fastai-mtl-output', 'history.csv', 'losses.png', 'model.pkl', 'results.png']
    history = pd.read_csv(out/'history.csv')
    assert {'shape_accuracy', 'color_accuracy', 'size_mae', 'marks_accuracy_multi', 'size_loss'} <= set(history.columns)
    assert len(history) == 2
    assert 'shape_accuracy' in res.stdout + res.stderr    # fastai's metrics table is printed

def test_help_and_bad_command():
    res = run('demo', '--help')
    assert res.returncode == 0 and '--epochs' in res.stdout
    res = run('fly')
    assert res.returncode != 0 and "unknown command 'fly'" in res.stderr and 'Traceback' not in res.stderr

def test_bad_arch_is_reported_without_traceback(tmp_path):
    res = run('demo', '--out', str(tmp_path), '--arch', 'resnet9000', '--n', '8')
    assert res.returncode != 0
    assert "Unknown architecture 'resnet9000'" in res.stderr and 'Traceback' not in res.stderr

from fastai_mtl.data import make_shapes

@pytest.fixture(scope='module')
def labelled(tmp_path_factory):
    "A folder with images and labels.csv, like a user's"
    path = tmp_path_factory.mktemp('flowers')
    make_shapes(path, n=48, img_size=32, seed=3)
    return path

def test_train_then_predict(labelled, tmp_path):
    out = tmp_path/'model'
    res = run('train', str(labelled/'labels.csv'), '--task', 'shape:category', '--task', 'color', '--task', 'size:regression',
              '--task', 'marks:multicategory', '--arch', 'resnet18', '--no-pretrained', '--epochs', '1', '--lr', '1e-2',
              '--bs', '16', '--size', '32', '--weighting', 'uncertainty', '--out', str(out))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ['.fastai-mtl-output', 'history.csv', 'losses.png', 'model.pkl', 'results.png', 'weights.png']
    history = pd.read_csv(out/'history.csv')
    assert {'shape_accuracy', 'color_loss', 'size_mae', 'marks_accuracy_multi', 'w_size'} <= set(history.columns)
    assert history['fit'].tolist() == [1, 2]

    preds_csv = tmp_path/'preds.csv'
    res = run('predict', str(out/'model.pkl'), '--csv', str(labelled/'labels.csv'), '--out', str(preds_csv), '--probs')
    assert res.returncode == 0, res.stderr
    preds = pd.read_csv(preds_csv)
    assert len(preds) == 48 and {'image', 'shape', 'color', 'size', 'marks', 'color_prob_red'} <= set(preds.columns)
    assert preds['shape'].isin(['circle', 'square', 'triangle']).all()

    res = run('predict', str(out/'model.pkl'), str(labelled/'images'/'00000.png'), str(labelled/'images'/'00001.png'))
    assert res.returncode == 0, res.stderr
    printed = pd.read_csv(io.StringIO(res.stdout[res.stdout.index('image,'):]))
    assert len(printed) == 2 and list(printed.columns[:2]) == ['image', 'shape']

@pytest.mark.parametrize('args,message', [
    (['--task', 'colour'], "no column 'colour' in the CSV"),
    (['--task', 'size:ordinal'], "unknown task kind 'ordinal'"),
    (['--task', 'shape', '--x', 'path'], "--x path: no column 'path'"),
    (['--task', 'shape', '--weighting', 'magic'], "--weighting magic: use one of"),
    (['--task', 'shape', '--lr', 'fast'], "--lr must be a number or 'auto'"),
    (['--task', 'shape', '--arch', 'resnet9000'], "Unknown architecture 'resnet9000'"),
])
def test_train_bad_arguments(labelled, tmp_path, args, message, monkeypatch):
    "In-process (the command's exit path is tested as a subprocess above): a clean exit naming the problem, nothing written"
    out = tmp_path/'never'
    monkeypatch.setattr(sys, 'argv', ['fastai-mtl', 'train', str(labelled/'labels.csv'), *args, '--no-pretrained', '--out', str(out)])
    with pytest.raises(SystemExit) as e: main()
    assert message in str(e.value.code), e.value.code
    assert not out.exists() and not [p for p in tmp_path.iterdir()]

@pytest.mark.parametrize('out', ['data', '.'])
def test_out_folder_of_the_user_is_refused_and_kept(labelled, tmp_path, monkeypatch, out):
    "`--out data` or `--out .` on a folder holding the user's files: refused before training, nothing deleted (it used to be deleted)"
    (tmp_path/'data').mkdir(); (tmp_path/'data'/'photo.jpg').write_text('precious'); (tmp_path/'notes.txt').write_text('mine')
    monkeypatch.chdir(tmp_path)
    res = run('train', str(labelled/'labels.csv'), '--task', 'shape', '--arch', 'resnet18', '--no-pretrained', '--epochs', '0',
              '--lr', '1e-2', '--bs', '16', '--size', '32', '--out', out)
    assert res.returncode != 0 and 'that fastai-mtl did not write' in res.stderr and 'Traceback' not in res.stderr, res.stderr
    assert 'fine_tune' not in res.stdout    # refused before training
    assert (tmp_path/'data'/'photo.jpg').read_text() == 'precious' and (tmp_path/'notes.txt').read_text() == 'mine'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'notes.txt']

def test_train_missing_and_corrupt_images(labelled, tmp_path):
    df = pd.read_csv(labelled/'labels.csv')
    df.loc[len(df)] = ['images/nowhere.png', 'circle', 'red', 10., 'dot']
    df.to_csv(tmp_path/'missing.csv', index=False)
    (tmp_path/'images').mkdir()
    for f in df.fname[:-1]: (tmp_path/f).symlink_to(labelled/f)
    res = run('train', str(tmp_path/'missing.csv'), '--task', 'shape', '--no-pretrained', '--out', str(tmp_path/'m'))
    assert res.returncode != 0 and "1 image(s) not found" in res.stderr and 'Traceback' not in res.stderr
    (tmp_path/'images'/'nowhere.png').write_bytes(b'not an image')
    res = run('train', str(tmp_path/'missing.csv'), '--task', 'shape', '--no-pretrained', '--out', str(tmp_path/'m'))
    assert res.returncode != 0 and "1 image(s) cannot be opened" in res.stderr and 'Traceback' not in res.stderr
    assert not (tmp_path/'m').exists()

def test_predict_bad_arguments(tmp_path):
    res = run('predict', str(tmp_path/'none.pkl'), 'a.png')
    assert res.returncode != 0 and 'model file not found' in res.stderr and 'Traceback' not in res.stderr
    res = run('train', str(tmp_path/'nothing.csv'), '--task', 'a')
    assert res.returncode != 0 and 'CSV file not found' in res.stderr

def _no_download(*args, **kwargs): torch.hub.download_url_to_file('http://127.0.0.1:9/weights.pth', '/nonexistent/w.pth', progress=False)
def _bad_value(*args, **kwargs): raise ValueError("Task 'shape': a clear message")
def _bug(*args, **kwargs): raise RuntimeError('a bug')

@pytest.mark.parametrize('build,message', [(_no_download, 'could not download pretrained weights for resnet18'),
                                           (_bad_value, "Task 'shape': a clear message"), (_bug, None)])
def test_only_a_failed_download_blames_the_weights(labelled, tmp_path, monkeypatch, build, message):
    "Any error while building the model used to become 'could not load pretrained weights... use --no-pretrained'"
    monkeypatch.setattr(fastai_mtl.cli, 'mtl_learner', build)
    monkeypatch.setattr(sys, 'argv', ['fastai-mtl', 'train', str(labelled/'labels.csv'), '--task', 'shape', '--arch', 'resnet18',
                                      '--size', '32', '--out', str(tmp_path/'m')])
    if message is None:
        with pytest.raises(RuntimeError, match='a bug'): main()
        return
    with pytest.raises(SystemExit) as e: main()
    assert message in str(e.value.code), e.value.code
    assert ('--no-pretrained' in str(e.value.code)) == (build is _no_download)
