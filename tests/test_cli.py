"The `fastai-mtl` command, run as a user would."
import subprocess, sys
from pathlib import Path
import pandas as pd

cli = str(Path(sys.executable).parent/'fastai-mtl')

def run(*args, **kwargs): return subprocess.run([cli, *args], capture_output=True, text=True, **kwargs)

def test_demo_writes_history_plot_and_model(tmp_path):
    out = tmp_path/'demo'
    res = run('demo', '--out', str(out), '--n', '96', '--epochs', '1', '--bs', '16')
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ['history.csv', 'losses.png', 'model.pkl']
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
