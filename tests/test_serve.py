"""`fastai-mtl serve` for real: the command on 127.0.0.1, the page in headless Chromium, a bounded load test, bad uploads.

Only loopback addresses; every loop is bounded."""
import concurrent.futures as cf, os, statistics, subprocess, sys, time
from pathlib import Path
import httpx, pytest
import base64, io
import numpy as np
from PIL import Image
from fastai.vision.all import set_seed, resnet18, DataBlock, ImageBlock, ColReader, RandomSplitter, Resize, PILImage
from fastai_mtl.all import *
from fastai_mtl.onnx import OnnxPredictor
from fastai_mtl.serve import answers

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tools'))
from chromium import Chromium, free_port
sys.path.insert(0, str(root/'tests'))
from unet_data import tiny_encoder

@pytest.fixture(scope='module')
def model(tmp_path_factory):
    "A shapes model exported as an ONNX pair, and the images it is asked about"
    path = tmp_path_factory.mktemp('serve')
    df = make_shapes(path, n=40, img_size=32, seed=6)
    tasks = Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size', unit='px'), MultiCategoryTask('marks'))
    set_seed(0)
    learn = mtl_learner(shapes_dataloaders(path, df, tasks, bs=8, num_workers=0), resnet18, tasks, pretrained=False, lin_ftrs=[16])
    return learn.export_onnx(path/'shapes.onnx'), [path/f for f in df.fname[:12]]

def _serve(model, *args):
    "`fastai-mtl serve model` on a free port of 127.0.0.1 (its default host): its URL, until the generator is closed"
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-c', 'from fastai_mtl.cli import main; main()', 'serve', str(model), '--port', str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root)
    url = f'http://127.0.0.1:{port}/'
    try:
        for _ in range(300):
            try:
                if httpx.get(url, timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            if proc.poll() is not None: pytest.fail(f'the server stopped: {proc.stdout.read()}')
            time.sleep(0.2)
        else: pytest.fail('the server did not answer within 60 s')
        yield url
    finally:
        proc.terminate(); proc.wait(10)

@pytest.fixture(scope='module')
def server(model):
    "The shapes model served, at most 4 files of 0.1 MB per request"
    yield from _serve(model[0], '--max-files', '4', '--max-mb', '0.1')

def post(url, files, timeout=30):
    return httpx.post(url + 'predict', files=[('files', (Path(n).name, b, 'image/png')) for n,b in files], timeout=timeout)

def expected_answers(model, files):
    "Each file's answers as the page shows them (`data-answer`): from the predictor in this process"
    p = OnnxPredictor(model)
    res = []
    for f in files:
        a = answers(p, p.predict(f))
        res.append({k: (str(v['value']) if v['kind'] == 'regression' else ' '.join(v['labels']) if 'labels' in v else v['label']) for k,v in a.items()})
    return res

def test_page_in_chromium(server, model, chromium, tmp_path):
    "Choosing three images in the page shows a card per image with every task's answer, the same as the predictor's"
    files = model[1][:3]
    (tmp_path/'profile').mkdir()
    browser = Chromium(chromium, tmp_path/'profile')
    try:
        browser.goto(server)
        assert 'shape (category)' in browser.js('document.body.textContent')
        browser.set_files('#files', files)
        assert browser.wait_for("document.body.dataset.state === 'done' || document.body.dataset.state === 'error'") and browser.js('document.body.dataset.state') == 'done', browser.js("document.getElementById('status').textContent")
        cards = browser.js("""[...document.querySelectorAll('.card')].map(c => ({file: c.dataset.file,
            tasks: Object.fromEntries([...c.querySelectorAll('.task')].map(t => [t.dataset.task, t.dataset.answer])),
            bars: c.querySelectorAll('.bar').length, img: c.querySelector('img').naturalWidth}))""")
        browser.screenshot(tmp_path/'page.png')
    finally: browser.close()
    assert [c['file'] for c in cards] == [f.name for f in files]
    for card,exp in zip(cards, expected_answers(model[0], files)):
        assert set(card['tasks']) == {'shape', 'color', 'size', 'marks'}
        assert {k: v for k,v in card['tasks'].items() if k != 'size'} == {k: v for k,v in exp.items() if k != 'size'}
        assert abs(float(card['tasks']['size']) - float(exp['size'])) < 1e-4*max(1, abs(float(exp['size'])))
        assert card['bars'] == 3 + 3 + 3 and card['img'] == 32       # a bar per class of shape, color and marks; the image shown
    assert (tmp_path/'page.png').stat().st_size > 10_000

def test_load(server, model):
    "200 requests, 8 at a time, on 127.0.0.1: every one answered, with p50 and p99 latency reported"
    images = [(f.name, f.read_bytes()) for f in model[1]]
    def one(i):
        start = time.perf_counter()
        r = post(server, [images[i % len(images)]])
        return r.status_code, time.perf_counter() - start, r.json()['results'][0]['file']
    with cf.ThreadPoolExecutor(8) as ex: res = list(ex.map(one, range(200)))
    assert [s for s,_,_ in res] == [200]*200
    assert [f for _,_,f in res] == [images[i % len(images)][0] for i in range(200)]
    lat = sorted(t for _,t,_ in res)
    p50, p99 = statistics.median(lat), lat[int(0.99*len(lat)) - 1]
    print(f'\nload test: 200 requests, 8 concurrent: p50 {1000*p50:.1f} ms, p99 {1000*p99:.1f} ms (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)')
    assert p99 < 30

def test_bad_uploads(server, model):
    "Each bad upload gets its 4xx and a message naming the problem; the next good request is answered"
    good = [(model[1][0].name, model[1][0].read_bytes())]
    truncated = good[0][1][:len(good[0][1])//2]
    bad = [([('notes.txt', b'just text')], 415, 'notes.txt: not an image'),
           ([('half.png', truncated)], 422, 'half.png: a corrupt or truncated image'),
           ([('big.png', b'\x89PNG' + b'0'*120_000)], 413, 'over the limit of 0.1 MB per file'),
           ([good[0]]*5, 413, 'Too many files: at most 4'),
           ([(f'{i}.png', b'0'*100_000) for i in range(8)], 413, 'The request is')]
    for files,status,msg in bad:
        r = post(server, files)
        assert r.status_code == status and msg in r.json()['error'], (status, r.status_code, r.text)
        ok = post(server, good)
        assert ok.status_code == 200 and set(ok.json()['results'][0]['tasks']) == {'shape', 'color', 'size', 'marks'}
    r = httpx.post(server + 'predict', content=b'x', headers={'content-type': 'text/plain'})
    assert r.status_code == 400 and 'multipart/form-data' in r.json()['error']

@pytest.fixture(scope='module')
def unet(tmp_path_factory):
    "A U-Net on the generated scenes (mask, depth in metres, normals, the scene's label), exported, and 48x40 versions of two scenes"
    path = tmp_path_factory.mktemp('unet')
    df = make_scenes(path, n=12, img_size=32, seed=2)
    reader = lambda col: ColReader(col, pref=path)
    tasks = Tasks(SegmentationTask('seg', codes=SCENE_CODES, getter=reader('seg')), DepthTask('depth', unit='m', getter=reader('depth')),
                  NormalsTask('normals', getter=reader('normals')), CategoryTask('scene'))
    dls = DataBlock(blocks=(ImageBlock, *tasks.blocks), n_inp=1, get_x=reader('image'), get_y=tasks.getters, splitter=RandomSplitter(seed=0),
                    item_tfms=Resize(32)).dataloaders(df, bs=4, num_workers=0)
    set_seed(0)
    learn = mtl_unet_learner(dls, tiny_encoder(), tasks, pretrained=False, lin_ftrs=[16])
    files = []
    for f in df.image[:2]:
        files.append(path/f'big_{Path(f).name}')
        Image.open(path/f).resize((48, 40)).save(files[-1])
    return learn, learn.export_onnx(path/'scenes.onnx'), files

def _png(url): return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(',')[1]))))

def test_dense_page_in_chromium(unet, chromium, tmp_path):
    "Scenes chosen in the page: the mask overlay and legend, the depth's colour map and mean, the normals, as `learn.predict` answers"
    learn,model,files = unet
    for url in _serve(model):
        api = post(url, [(f.name, f.read_bytes()) for f in files]).json()['results']
        (tmp_path/'profile').mkdir()
        browser = Chromium(chromium, tmp_path/'profile')
        try:
            browser.goto(url)
            browser.set_files('#files', files)
            assert browser.wait_for("document.body.dataset.state === 'done' || document.body.dataset.state === 'error'") and browser.js('document.body.dataset.state') == 'done', browser.js("document.getElementById('status').textContent")
            assert browser.wait_for("[...document.querySelectorAll('.dense img')].every(i => i.complete && i.naturalWidth > 0)")
            cards = browser.js("""[...document.querySelectorAll('.card')].map(c => ({file: c.dataset.file,
                tasks: Object.fromEntries([...c.querySelectorAll('.task')].map(t => [t.dataset.task, t.dataset.answer])),
                legend: [...c.querySelectorAll('.legend .code')].map(e => e.dataset.code),
                maps: [...c.querySelectorAll('.dense img.map, .dense img.overlay')].map(i => [i.alt, i.naturalWidth, i.naturalHeight])}))""")
            browser.screenshot(tmp_path/'dense.png')
        finally: browser.close()
    assert [c['file'] for c in cards] == [f.name for f in files]
    for card,f,res in zip(cards, files, api):
        expected = learn.predict(PILImage.create(f))
        ids = expected['seg'].numpy()
        assert (_png(res['tasks']['seg']['mask']) == ids).all()
        present = [SCENE_CODES[i] for i in np.argsort(-np.bincount(ids.ravel(), minlength=len(SCENE_CODES)), kind='stable') if (ids == i).any()]
        assert card['legend'] == present and card['tasks']['seg'] == ' '.join(present)
        assert abs(float(card['tasks']['depth']) - expected['depth'].mean().item()) < 1e-4
        assert card['tasks']['scene'] == expected['scene']
        assert card['maps'] == [['seg', 48, 40], ['depth', 48, 40], ['normals', 48, 40]]
    assert (tmp_path/'dense.png').stat().st_size > 10_000
