"Distributed data-parallel training (2 gloo processes on 127.0.0.1, CPU) gives what one process gives on the same global batches."
import json, math, os, subprocess, sys
from pathlib import Path
import pytest
from conftest import require, free_port
from fastai_mtl.all import make_shapes

WEIGHTINGS = ['static', 'uncertainty', 'upgrad', 'config']   # loss-based, learned (in the loss), TorchJD representation and parameter level
RUNS = WEIGHTINGS + ['upgrad@mmoe', 'static@mtan']                 # and two soft sharings: experts and gates, task attention
PER_PROCESS_BN = ['static@mtan']   # MTAN's attention blocks have batch norm, whose statistics are per process on CPUs (no SyncBatchNorm)
RTOL = 1e-4   # Float rounding: the two runs sum the same gradients in a different order

def test_ddp_matches_single_process(tmp_path):
    require('accelerate')
    data = tmp_path/'data'
    make_shapes(data, n=160, img_size=32, seed=3)   # Once, before the processes read it
    script = str(Path(__file__).parent/'ddp_train.py')
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1'}
    ddp = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
                            '--master_port', str(free_port()), script, str(data), str(tmp_path/'ddp'), *RUNS],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    single = subprocess.run([sys.executable, script, '--single', str(data), str(tmp_path/'single'), *RUNS],
                            env=env, capture_output=True, text=True, timeout=300)
    out,_ = ddp.communicate(timeout=300)
    assert ddp.returncode == 0, out[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    r0,r1,ref = (json.loads((tmp_path/d/f'rank{r}.json').read_text()) for d,r in (('ddp', 0), ('ddp', 1), ('single', 0)))
    for w in RUNS:
        assert r0[w]['checksum'] == r1[w]['checksum'], f"{w}: the processes' parameters differ"
        if w in PER_PROCESS_BN:   # the same parameters in both processes, finite metrics; the single process's batch statistics differ
            assert all(math.isfinite(v) for v in r0[w]['metrics'].values()), r0[w]; continue
        assert r0[w]['checksum'] == pytest.approx(ref[w]['checksum'], rel=RTOL), w
        for k,v in ref[w]['metrics'].items(): assert r0[w]['metrics'][k] == pytest.approx(v, rel=RTOL, abs=1e-6), (w, k)
    assert r0['uncertainty']['metrics']['w_shape'] != 0.5   # the learned weights moved (and agree, above)

def test_ddp_metrics_with_missing_labels(tmp_path):
    "Each process has a different number of labelled items: the metrics still cover them all, as one process computes them"
    require('accelerate')
    data, out = tmp_path/'data', tmp_path/'out'
    out.mkdir()
    make_shapes(data, n=160, img_size=32, seed=3, missing=0.3)
    script = str(Path(__file__).parent/'ddp_train.py')
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1'}
    ddp = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
                          '--master_port', str(free_port()), script, '--missing', str(data), str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    single = subprocess.run([sys.executable, script, '--single', '--missing', str(data), str(out)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    got, ref = (json.loads((out/f'missing_{k}.json').read_text()) for k in ('ddp', 'single'))
    for k in ('shape_accuracy', 'color_accuracy', 'size_mae', 'marks_accuracy_multi'):
        assert got[k] == pytest.approx(ref[k], rel=1e-5), (k, got, ref)
