"The `fastai-mtl` command, run as a user would."
import io, os, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest, torch
import fastai_mtl.cli, fastai_mtl.cli_data
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
    assert len(history) == 1
    assert 'shape_accuracy' in res.stdout + res.stderr    # fastai's metrics table is printed

def test_help_and_bad_command():
    res = run('demo', '--help')
    assert res.returncode == 0 and '--epochs' in res.stdout
    assert res.stderr == '', res.stderr          # starts clean: no library notice (fastai's torch.jit.script FutureWarning) before the help
    res = run('train', '--help')
    assert 'Train from scratch instead of from pretrained weights (needs no download) (default: False)' in ' '.join(res.stdout.split())
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
    monkeypatch.setattr(fastai_mtl.cli_data, 'mtl_learner', build)
    monkeypatch.setattr(sys, 'argv', ['fastai-mtl', 'train', str(labelled/'labels.csv'), '--task', 'shape', '--arch', 'resnet18',
                                      '--size', '32', '--out', str(tmp_path/'m')])
    if message is None:
        with pytest.raises(RuntimeError, match='a bug'): main()
        return
    with pytest.raises(SystemExit) as e: main()
    assert message in str(e.value.code), e.value.code
    assert ('--no-pretrained' in str(e.value.code)) == (build is _no_download)

# Dense tasks: generated scenes (an image, a mask, a 16-bit PNG depth map and normals per row) at 32 px
import numpy as np
from PIL import Image
from fastai_mtl.scenes import make_scenes, SCENE_CODES

@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    "A folder with data.csv (image, seg, depth, normals, scene...) and codes.txt"
    path = tmp_path_factory.mktemp('scenes')
    make_scenes(path, n=16, img_size=32, seed=2, depth_format='png').to_csv(path/'data.csv', index=False)
    (path/'codes.txt').write_text('\n'.join(SCENE_CODES) + '\n')
    return path

DENSE = ['--task', 'seg:segmentation', '--task', 'depth:depth', '--task', 'normals:normals', '--task', 'scene', '--x', 'image']

@pytest.fixture(scope='module')
def dense_model(scenes, tmp_path_factory):
    "`fastai-mtl train` with dense tasks, as a subprocess: the output folder"
    out = tmp_path_factory.mktemp('dense')/'model'
    res = run('train', str(scenes/'data.csv'), *DENSE, '--codes', str(scenes/'codes.txt'), '--arch', 'resnet18', '--no-pretrained',
              '--epochs', '0', '--lr', '1e-2', '--bs', '8', '--size', '32', '--valid-pct', '0.25', '--out', str(out))
    assert res.returncode == 0, res.stderr
    return out

def test_dense_train_writes_unet_model_and_history(dense_model):
    assert sorted(p.name for p in dense_model.iterdir()) == ['.fastai-mtl-output', 'history.csv', 'losses.png', 'model.pkl', 'results.png']
    history = pd.read_csv(dense_model/'history.csv')
    assert {'seg_miou', 'seg_pixel_accuracy', 'depth_abs_err', 'normals_mean_angle', 'scene_accuracy'} <= set(history.columns)
    assert len(history) == 1

def test_dense_predict_writes_maps_at_each_image_size(scenes, dense_model, tmp_path):
    Image.open(scenes/'images'/'00002.png').resize((40, 48)).save(tmp_path/'wide.png')   # not the training size
    images = [str(scenes/'images'/'00000.png'), str(scenes/'images'/'00001.png'), str(tmp_path/'wide.png')]
    out = tmp_path/'preds'
    res = run('predict', str(dense_model/'model.pkl'), *images, '--out', str(out), '--depth-format', 'png', '--probs')
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ['.fastai-mtl-output', 'depth', 'normals', 'predictions.csv', 'seg']
    preds = pd.read_csv(out/'predictions.csv')
    assert preds['image'].tolist() == images and list(preds.columns[:5]) == ['image', 'seg', 'depth', 'normals', 'scene']
    assert preds['seg'].tolist() == ['seg/00000.png', 'seg/00001.png', 'seg/wide.png'] and 'scene_prob_box' in preds.columns
    assert preds['scene'].isin(['sphere', 'box', 'cylinder']).all()
    for img,seg,depth,normals in preds[['image', 'seg', 'depth', 'normals']].values:
        w,h = Image.open(img).size
        mask = np.asarray(Image.open(out/seg))
        assert mask.shape == (h, w) and mask.min() >= 0 and mask.max() < len(SCENE_CODES)
        d = Image.open(out/depth)
        assert d.size == (w, h) and d.mode.startswith('I') and np.asarray(d).min() >= 1   # 16-bit millimetres, none 0 (unknown)
        n = np.load(out/normals)
        assert n.shape == (h, w, 3) and np.allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-4)

def _exits(monkeypatch, *argv):
    "The one-line message `fastai-mtl` exits with (status 1: `SystemExit` with a message) for `argv`, run in-process"
    monkeypatch.setattr(sys, 'argv', ['fastai-mtl', *argv])
    with pytest.raises(SystemExit) as e: main()
    assert isinstance(e.value.code, str) and '\n' not in e.value.code, e.value.code
    return e.value.code

def _bad_codes(tmp, text): (tmp/'bad_codes.txt').write_text(text); return ['--codes', str(tmp/'bad_codes.txt')]
def _bad_row(tmp, scenes, col, write):
    "A CSV of the scenes whose row 3 (line 5) has the target `write(tmp)` in column `col`; the image folder is --folder"
    df = pd.read_csv(scenes/'data.csv')
    df.loc[3, col] = os.path.relpath(write(tmp), scenes)
    df.to_csv(tmp/'bad.csv', index=False)
    return ['--codes', str(scenes/'codes.txt')]
def _png(arr): return lambda tmp: (Image.fromarray(arr).save(tmp/'t.png'), tmp/'t.png')[1]
def _npy(arr): return lambda tmp: (np.save(tmp/'t.npy', arr), tmp/'t.npy')[1]

@pytest.mark.parametrize('case,message', [
    (lambda tmp, s: ['--codes', str(tmp/'none.txt')], "(segmentation task 'seg'): file not found; expected a text file with one code (class name) per line"),
    (lambda tmp, s: _bad_codes(tmp, ''), "(segmentation task 'seg'): the file is empty"),
    (lambda tmp, s: _bad_codes(tmp, 'floor\nwall\n\nceiling\n'), "(segmentation task 'seg'): line 3 is blank"),
    (lambda tmp, s: [], "--task seg:segmentation needs its codes, the class names of the mask values 0, 1, ...: give --codes FILE"),
    (lambda tmp, s: ['--codes', f"depth={s/'codes.txt'}"], "'depth' is not a segmentation task; the segmentation tasks are ['seg']"),
    (lambda tmp, s: _bad_row(tmp, s, 'seg', lambda t: t/'nowhere.png'), "(column 'seg', --task seg:segmentation): Task 'seg': cannot read the target file"),
    (lambda tmp, s: _bad_row(tmp, s, 'seg', lambda t: (t/'x.png').write_bytes(b'no png') and t/'x.png'), "line 5 (column 'seg', --task seg:segmentation): Task 'seg': cannot read the target file"),
    (lambda tmp, s: _bad_row(tmp, s, 'seg', _png(np.full((32, 32), 9, np.uint8))), "has values [9] that are not class ids of the 6 codes (0 to 5) nor the void value 255"),
    (lambda tmp, s: _bad_row(tmp, s, 'depth', _npy(np.ones((16, 32), np.float32))), "line 5 (column 'depth', --task depth:depth): Task 'depth': the target"),
    (lambda tmp, s: _bad_row(tmp, s, 'normals', _npy(np.full((32, 32, 3), 2., np.float32))), "(column 'normals', --task normals:normals): Task 'normals': the target"),
])
def test_dense_train_bad_input(scenes, tmp_path, monkeypatch, case, message):
    "Each bad codes file or target: one line naming the task, column and item, before anything is written"
    extra = case(tmp_path, scenes)
    csv = tmp_path/'bad.csv' if (tmp_path/'bad.csv').exists() else scenes/'data.csv'
    before = sorted(p.name for p in tmp_path.iterdir())
    msg = _exits(monkeypatch, 'train', str(csv), *DENSE, *extra, '--folder', str(scenes), '--no-pretrained', '--size', '32', '--out', str(tmp_path/'never'))
    assert msg.startswith('fastai-mtl train: ') and message in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # no --out, no staging folder

def test_dense_bad_target_exits_1_without_traceback(scenes, tmp_path):
    "As a user sees it: status 1, the message as the last line on stderr (after library warnings), no traceback"
    extra = _bad_row(tmp_path, scenes, 'seg', _png(np.full((32, 32), 9, np.uint8)))
    res = run('train', str(tmp_path/'bad.csv'), *DENSE, *extra, '--folder', str(scenes), '--no-pretrained', '--out', str(tmp_path/'never'))
    assert res.returncode == 1 and 'Traceback' not in res.stderr
    assert res.stderr.strip().splitlines()[-1:] == [f"fastai-mtl train: 1 row(s) of {tmp_path/'bad.csv'} have bad targets; the first, line 5 (column 'seg', "
        f"--task seg:segmentation): Task 'seg': the target '{scenes}{os.sep}{os.path.relpath(tmp_path/'t.png', scenes)}' has values [9] that are not class ids of the 6 codes (0 to 5) nor the void value 255"]
    assert not (tmp_path/'never').exists()

@pytest.mark.parametrize('args,message', [([], "give --out FOLDER: this model has dense tasks ['seg', 'depth', 'normals']"),
    (['--out', 'preds.csv'], "--out preds.csv: this model has dense tasks ['seg', 'depth', 'normals'], so --out must be a folder"),
    (['--out', 'preds', '--depth-format', 'tiff'], "--depth-format tiff: use 'npy' (float32) or 'png' (16-bit, the task's png_scale steps per unit)")])
def test_dense_predict_bad_arguments(scenes, dense_model, tmp_path, monkeypatch, args, message):
    "A model with dense tasks writes into a folder: refused before anything is written"
    monkeypatch.chdir(tmp_path)
    msg = _exits(monkeypatch, 'predict', str(dense_model/'model.pkl'), str(scenes/'images'/'00000.png'), *args)
    assert msg.startswith('fastai-mtl predict: ') and message in msg, msg
    assert not list(tmp_path.iterdir())
