"""The docs site: built offline from the notebooks by `tools/build_docs.py`, served on 127.0.0.1, checked in headless Chromium.

Needs Debian's `chromium`; without it the browser checks skip, unless FASTAI_MTL_REQUIRE_BROWSER=1 (CI), where they fail."""
import importlib, json, os, re, resource, subprocess, sys, threading, time, urllib.request
from functools import partial
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from urllib.parse import urldefrag, urlparse, unquote
import pytest

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root/'tools'))
from build_docs import doc_nbs, page_name, pandoc_id, resolve_anchor
from chromium import Chromium

site_dir = root/'_docs'
nbs = root/'nbs'

def _nb(rel): return json.loads((nbs/rel).read_text())
def _src(cell): return ''.join(cell['source'])

def default_exp(rel):
    "The module notebook `rel` exports to, or None"
    srcs = [_src(c) for c in _nb(rel)['cells'] if c['cell_type'] == 'code']
    return next((m[1] for s in srcs if (m := re.search(r'^#\|\s*default_exp\s+(\S+)', s, re.M))), None)

def has_math(rel):
    "Does a markdown cell of notebook `rel` have TeX math (`$...$`)?"
    return any(re.search(r'\$[^$\s`][^$`]*\$', _src(c)) for c in _nb(rel)['cells'] if c['cell_type'] == 'markdown')

_table_rule = re.compile(r'^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$', re.M)  # a Markdown table's |---|---| line

def n_tables(rel):
    "Number of Markdown tables notebook `rel` shows: in its markdown cells and the Markdown outputs of cells that are not hidden"
    hidden = re.compile(r'^#\|\s*(hide\b|include:\s*false|output:\s*false)', re.M)
    mds = [_src(c) for c in _nb(rel)['cells'] if c['cell_type'] == 'markdown']
    mds += [''.join(o['data']['text/markdown']) for c in _nb(rel)['cells'] if c['cell_type'] == 'code' and not hidden.search(_src(c))
            for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
    return sum(len(_table_rule.findall(md)) for md in mds)

def n_figures(rel):
    "Number of figures notebook `rel` shows: image outputs of cells that are not hidden"
    hidden = re.compile(r'^#\|\s*(hide\b|include:\s*false|output:\s*false)', re.M)
    return sum(any(k.startswith('image/') for k in o.get('data', {})) for c in _nb(rel)['cells']
               if c['cell_type'] == 'code' and not hidden.search(_src(c)) for o in c.get('outputs', []))

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site, built into `_docs/` by the documented command (intermediate files in a temporary folder)"
    work, rels = tmp_path_factory.mktemp('docs_work'), doc_nbs(nbs)
    figs, tables = {r: n_figures(r) for r in rels}, {r: n_tables(r) for r in rels}  # notebooks change while others work: what was built is what is checked
    math = [r for r in rels if has_math(r)]
    def cpu(): return (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN))
    start, cpu0 = time.time(), cpu()
    res = subprocess.run([sys.executable, root/'tools'/'build_docs.py', '--out', site_dir, '--work', work],
                         capture_output=True, text=True, env={**os.environ, 'MPLBACKEND': 'Agg'}, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    return dict(path=site_dir, log=res.stdout + res.stderr, secs=time.time() - start, cpu=cpu() - cpu0,
                rels=rels, figs=figs, tables=tables, math=math)

def test_build(site):
    "One page per notebook, no Sphinx warnings, well under two minutes of CPU (wall time depends on the machine's load)"
    path, log = site['path'], site['log']
    pages = [page_name(r) for r in site['rels']]
    assert pages[0] == 'index'
    for p in pages: assert (path/f'{p}.html').exists(), f'no page for {p}'
    assert re.search(r'\b0 warnings\b', log), log[-3000:]
    assert site['cpu'] < 60, f"the docs build took {site['cpu']:.0f}s of CPU ({site['secs']:.0f}s wall)"

def test_page_order(tmp_path):
    "Sidebar order: index, numbered chapters, tutorials, other pages; any new notebook is picked up, private ones are not"
    names = ['errors.ipynb', 'tutorials/02_x.ipynb', '01b_c.ipynb', 'index.ipynb', 'benchmarks.ipynb', '00_a.ipynb',
             'tutorials/01_y.ipynb', '_draft.ipynb', '.ipynb_checkpoints/00_a-checkpoint.ipynb', 'tutorials/notes.md']
    for n in names: (tmp_path/n).parent.mkdir(exist_ok=True); (tmp_path/n).write_text('{}')
    assert [str(r) for r in doc_nbs(tmp_path)] == ['index.ipynb', '00_a.ipynb', '01b_c.ipynb', 'tutorials/01_y.ipynb',
                                                   'tutorials/02_x.ipynb', 'benchmarks.ipynb', 'errors.ipynb']
    assert [page_name(r) for r in doc_nbs(tmp_path)][:5] == ['index', 'a', 'c', 'tutorials/y', 'tutorials/x']

def _cell(src, cell_type='code', outputs=()):
    from fastcore.basics import AttrDict
    return AttrDict(cell_type=cell_type, source=src, metadata={}, outputs=list(outputs))

def _md_out(md): return dict(output_type='execute_result', execution_count=None, metadata={}, data={'text/markdown': md})

def test_quarto_translation(monkeypatch):
    "Quarto's cell options, show_doc output, links to the hosted site and callouts become what MyST-NB understands"
    from build_docs import to_myst_cells, fix_md
    monkeypatch.chdir(root)
    assert to_myst_cells(_cell('#| include: false\nx = 1'), '') == []
    hidden_in = to_myst_cells(_cell('#| echo: false\nplot()', outputs=[_md_out('*hi*')]), '')
    assert [(c.cell_type, c.source, c.metadata) for c in hidden_in] == [('code', 'plot()', {'tags': ['remove-input']})]
    assert to_myst_cells(_cell('#| output: false\nf()', outputs=[_md_out('x')]), '')[0].outputs == []
    sd = ('---\n\n[source](https://github.com/x/y.py#L3){target="_blank" style="float:right; font-size:smaller"}\n\n'
          '### f\n\n```python\ndef f(a):\n```\n\n*Does [`Tasks`](https://fastai-mtl.github.io/fastai_mtl/tasks.html#tasks)*')
    [md] = to_myst_cells(_cell('#| echo: false\n#| output: asis\nshow_doc(f)', outputs=[_md_out(sd)]), '../')
    assert md.cell_type == 'markdown' and '#|' not in md.source and '---' not in md.source
    assert md.source.startswith('### f\n\n<a class="sd-source" href="https://github.com/x/y.py#L3" target="_blank">source</a>')
    assert '[`Tasks`](../tasks.html#tasks)' in md.source
    assert fix_md('::: {.callout-warning}\nCareful\n:::', '') == ':::{warning}\nCareful\n:::'
    assert fix_md('::: {.callout-tip title="Why"}\nBecause\n:::', '') == ':::{admonition} Why\n:class: tip\nBecause\n:::'
    assert fix_md('See [the tasks](00_tasks.ipynb#tasks).', '') == 'See [the tasks](tasks.html#tasks).'

def test_anchors():
    "Headings get Quarto's ids; a link to an undocumented method goes to its class, a link to nothing to the page"
    for text, nid in [('is_missing', 'is_missing'), ('MTLLearner.predict', 'mtllearner.predict'), ('Missing labels', 'missing-labels'),
                      ('2. Train it!', 'train-it'), ('Tasks', 'tasks')]:
        assert pandoc_id(text) == nid
    ids = {'task', 'tasks', 'mtllearner.predict'}
    assert resolve_anchor('mtllearner.predict', ids) == 'mtllearner.predict' and resolve_anchor('task.setup', ids) == 'task'
    assert resolve_anchor('nothing', ids) is None

# ---- headless Chromium over the DevTools protocol

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

class _Server(ThreadingHTTPServer):
    "The site on 127.0.0.1; requests the browser drops halfway (`BrokenPipeError`) are not errors"
    daemon_threads = True
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError): super().handle_error(request, client_address)

_page_js = """(async () => {
  const imgs = [...document.querySelectorAll('article img')];
  await Promise.all(imgs.map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
  if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
  return {title: document.title, h1: (document.querySelector('article h1') || {}).textContent || '',
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    heads: [...document.querySelectorAll('article h2, article h3, article h4')].map(h => [h.textContent, h.closest('section')?.id || '']),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    imgs: imgs.map(i => [i.src, i.naturalWidth]), math: document.querySelectorAll('article mjx-container').length,
    text: document.body.textContent, tables: document.querySelectorAll('article table').length,
    prose: (a => { if (!a) return ''; a = a.cloneNode(true); a.querySelectorAll('pre, code, .highlight').forEach(e => e.remove());
                   return a.innerText; })(document.querySelector('article'))};
})()"""

@pytest.fixture(scope='module')
def crawl(chromium, site, tmp_path_factory):
    "Every page reachable from the home page, as rendered by headless Chromium: {page: DOM facts}"
    binary, path = chromium, site['path']
    server = _Server(('127.0.0.1', 0), partial(_Quiet, directory=str(path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f'http://127.0.0.1:{server.server_port}/'
    browser = Chromium(binary, tmp_path_factory.mktemp('chromium'))
    try:
        pages, todo = {}, ['index.html']
        while todo:
            p = todo.pop(0)
            if p in pages: continue
            with urllib.request.urlopen(base + p) as r: status = r.status
            browser.goto(base + p)
            pages[p] = dict(status=status, **browser.js(_page_js))
            for link in pages[p]['links']:
                q = unquote(urlparse(urldefrag(link)[0]).path).lstrip('/')
                if link.startswith(base) and q.endswith('.html') and q not in pages: todo.append(q)
        yield dict(base=base, pages=pages, browser=browser, path=path, rels=site['rels'], figs=site['figs'], tables=site['tables'], math=site['math'])
    finally:
        browser.close(); server.shutdown()

def test_every_page_loads(crawl):
    "Every notebook's page is reached from the home page's navigation, answers 200 and shows its title"
    pages = crawl['pages']
    for rel in crawl['rels']:
        p = f'{page_name(rel)}.html'
        assert p in pages, f'{p} is not reachable from the navigation'
        d = pages[p]
        assert d['status'] == 200
        assert d['h1'].strip(' #¶') and d['h1'].strip(' #¶') in d['title'], (p, d['h1'], d['title'])

def test_links_resolve(crawl):
    "Every internal link (navigation, cross-references, images) points to an existing page and anchor"
    base, pages, bad = crawl['base'], crawl['pages'], []
    for p, d in pages.items():
        for link in d['links']:
            if not link.startswith(base): continue
            url, frag = urldefrag(link)
            q = unquote(urlparse(url).path).lstrip('/') or 'index.html'
            if q not in pages:
                try: urllib.request.urlopen(base + q).close()
                except OSError: bad.append(f'{p}: {link} (no such file)')
            elif frag and unquote(frag) not in pages[q]['ids']: bad.append(f'{p}: {link} (no such anchor)')
    assert not bad, '\n'.join(bad)

def defines(m, name):
    "Does module `m` define `name` (rather than import it): a function, class, method of a dispatched function, or value?"
    o = getattr(m, name)
    if hasattr(o, 'methods'): return any(f.implementation.__module__ == m.__name__ for f in o.methods)
    if hasattr(o, '__module__') and (callable(o) or isinstance(o, type)): return o.__module__ == m.__name__
    return bool(re.search(rf'^[\w, ]*\b{name}\b[\w, ]*(:[^=\n]*)?=', Path(m.__file__).read_text(), re.M))

def test_defines():
    import fastai_mtl.all, fastai_mtl.data, fastai_mtl.inference, fastai_mtl.tabular
    assert defines(fastai_mtl.data, 'SHAPES') and defines(fastai_mtl.data, 'make_shapes')
    assert defines(fastai_mtl.inference, 'show_batch') and defines(fastai_mtl.tabular, 'show_batch')
    assert not defines(fastai_mtl.all, 'SHAPES') and not defines(fastai_mtl.all, 'Tasks')

def test_api_pages_document_exports(crawl):
    "Each symbol in a module's `__all__` has its own heading, with Quarto's id, on the page of the notebook that exports it"
    pages, missing, n = crawl['pages'], [], 0
    for rel in crawl['rels']:
        mod = default_exp(rel)
        if mod is None: continue
        d = pages[f'{page_name(rel)}.html']
        heads = {t.strip(' #¶'): sid for t, sid in d['heads']}
        m = importlib.import_module(f'fastai_mtl.{mod}')
        for name in filter(partial(defines, m), m.__all__):
            n += 1
            if name not in heads or pandoc_id(name) not in d['ids']: missing.append(f'{page_name(rel)}: {name}')
    assert n > 50 and not missing, missing

def test_figures(crawl):
    "Each page shows (at least) the figures its notebook has saved, and every image loads"
    pages = crawl['pages']
    for rel in crawl['rels']:
        imgs = pages[f'{page_name(rel)}.html']['imgs']
        assert all(w > 0 for _, w in imgs), [s for s, w in imgs if not w]
        assert len(imgs) >= crawl['figs'][rel], (rel, len(imgs), crawl['figs'][rel])
    assert sum(crawl['figs'].values()) > 0

def test_tables(crawl):
    "Each page renders (at least) the Markdown tables its notebook has as HTML tables; no page shows table syntax as text"
    pages, raw = crawl['pages'], re.compile(r'^\s*\|?\s*:?(-{3,}|—+):?\s*(\|\s*:?(-{3,}|—+):?\s*)+\|?\s*$', re.M)
    for rel in crawl['rels']:
        d = pages[f'{page_name(rel)}.html']
        assert d['tables'] >= crawl['tables'][rel], (rel, d['tables'], crawl['tables'][rel])
        assert not raw.search(d['prose']), (rel, raw.search(d['prose'])[0])
    assert crawl['tables'][Path('benchmarks.ipynb')] > 3 and sum(crawl['tables'].values()) > 10

def test_math(crawl):
    "TeX math in the notebooks' markdown is typeset by MathJax, which is served with the site (no network)"
    for rel in crawl['math']: assert crawl['pages'][f'{page_name(rel)}.html']['math'] > 0, rel

def test_no_directives(crawl):
    "No nbdev/Quarto directive (`#|`) shows on any page"
    leaks = [p for p, d in crawl['pages'].items() if '#|' in d['text']]
    assert not leaks, leaks

def test_screenshots(crawl):
    "Screenshots of the home page, an API page and a tutorial (or, before there is one, the page with most figures)"
    rels, b, out = crawl['rels'], crawl['browser'], crawl['path']/'_screenshots'
    out.mkdir(exist_ok=True)
    tuts = [r for r in rels if r.parts[0] == 'tutorials']
    tut = max(tuts or rels, key=crawl['figs'].get)
    for name, page in [('home', 'index'), ('api', 'tasks'), ('tutorial', page_name(tut))]:
        b.goto(crawl['base'] + f'{page}.html')
        if name == 'tutorial': b.js("document.querySelector('article img')?.scrollIntoView({block: 'center'})")
        b.screenshot(out/f'{name}.png')
        assert (out/f'{name}.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
