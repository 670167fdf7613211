"""Build the documentation site offline into `_docs/`: `python tools/build_docs.py [--out DIR] [--work DIR]`.

Intermediate files go to `build/docs/` (not `_proc/`, where `nbdev-docs` stages what Quarto renders).

nbdev's own notebook processors (the ones `nbdev-docs` runs before Quarto) turn each notebook in `nbs/` into a page:
front matter, `show_doc` for every exported symbol, links between symbols, hidden and exported cells removed. Nothing
is executed: `show_doc` is rendered from the exported module and every other output is the one saved in the notebook.
What only Quarto understands is then translated for MyST-NB, and Sphinx renders the pages with the furo theme.
This file is also the Sphinx extension that gives headings the ids Quarto would give them (`tasks.html#tasks`)."""
import argparse, ast, importlib, io, os, posixpath, pprint, re, shutil, sys
from urllib.parse import unquote
from pathlib import Path

root = Path(__file__).resolve().parent.parent
_img_exts = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'}

# ---- which pages, in which order

def _skip(rel): return any(o.startswith(('.', '_')) for o in rel.parts)

def _group(rel):
    "Sidebar group of notebook `rel`: 0 index, 1 numbered chapters, 2 tutorials, 3 other pages"
    if len(rel.parts) == 1: return 0 if rel.name == 'index.ipynb' else 1 if rel.name[0].isdigit() else 3
    return 2 if rel.parts[0] == 'tutorials' else 3

def doc_nbs(nbs):
    "Notebooks under `nbs` (relative paths) in sidebar order: index, chapters, tutorials, then other pages"
    rels = [p.relative_to(nbs) for p in nbs.rglob('*.ipynb')]
    return sorted((r for r in rels if not _skip(r)), key=lambda r: (_group(r), str(r)))

def page_name(rel):
    "Sphinx document name of notebook `rel`: nbdev's html path (numeric prefix dropped) without `.html`"
    from nbdev.config import nbpath2html
    return nbpath2html(rel).with_suffix('').as_posix()

# ---- nbdev's processors, without executing the notebook

def _code(src): return '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith('#|'))

def nb_module(nb):
    "The module notebook `nb` exports to (its `default_exp`), imported; `None` if it exports nothing"
    from nbdev.config import get_config
    mod = next((c.directives_['default_exp'] for c in nb.cells if 'default_exp' in getattr(c, 'directives_', {})), None)
    if mod is None: return None
    name = f'{get_config().lib_name}.{mod.split()[0]}'
    try: return importlib.import_module(name)
    except ImportError as e: raise ImportError(f'{nb.path_} exports `{name}`, which cannot be imported ({e}): run nbdev-export') from e

def nb_namespace(nb):
    "Names `show_doc` calls of notebook `nb` may use: its exported module's, on top of the library's `all`"
    from nbdev.config import get_config
    from nbdev.showdoc import show_doc
    m = nb_module(nb)
    return {**vars(importlib.import_module(f'{get_config().lib_name}.all')), **(vars(m) if m else {}), 'show_doc': show_doc}

def _mk_processors():
    "nbdev processor classes used below (imported lazily: nbdev is only needed for building)"
    from nbdev.process import Processor
    from nbdev.processors import FilterDefaults, exec_show_docs, add_show_docs, _is_showdoc
    from fastcore.nbio import mk_cell

    class render_show_docs(Processor):
        "nbdev's `exec_show_docs` without running the notebook: evaluate only `show_doc` cells, in `nb_namespace`"
        def begin(self):
            m = nb_module(self.nb)
            self.ns, self.modname = nb_namespace(self.nb) if getattr(self.nb, 'has_docs_', False) else None, m and m.__name__
        def cell(self, cell):
            if self.ns is None or not _is_showdoc(cell): return
            try: md = render_doc(_code(cell.source), self.ns, self.modname)
            except Exception as e:
                raise RuntimeError(f'{self.nb.path_}: cannot render `{_code(cell.source)}`: {type(e).__name__}: {e}') from e
            out = dict(output_type='execute_result', metadata={}, execution_count=None, data={'text/markdown': md})
            cell.outputs = [out] if md else []

    class add_name_docs(Processor):
        "Document exported names that are not functions or classes (`add_show_docs` skips them): name and value"
        def begin(self):
            m = nb_module(self.nb)
            if m is None: return
            todo = set(getattr(m, '__all__', [])) - _shown(self.nb)
            for cell in reversed([c for c in self.nb.cells if _is_export(c)]):
                for nm in reversed([n for n in _assigned(cell) if n in todo]):
                    todo.discard(nm)
                    self.nb.cells.insert(cell.idx_+1, mk_cell(name_doc(nm, getattr(m, nm), cell), 'markdown'))

    class DocProcs(FilterDefaults):
        "nbdev's doc processors, `exec_show_docs` replaced by `render_show_docs`, `add_name_docs` after `add_show_docs`"
        def base_procs(self):
            procs = [render_show_docs if p is exec_show_docs else p for p in super().base_procs()]
            i = procs.index(add_show_docs)
            return procs[:i+1] + [add_name_docs] + procs[i+1:]
    return DocProcs

def _eval(node, ns): return eval(compile(ast.Expression(node), '<show_doc>', 'eval'), ns)

def dispatch_doc(f, nm, modname):
    "Docs of the methods module `modname` adds to dispatched function `f`, named `nm` (`show_doc` shows nothing for these)"
    from nbdev.showdoc import show_doc
    impls = dict.fromkeys(m.implementation for m in getattr(f, 'methods', []) if m.implementation.__module__ == modname)
    return '\n\n'.join(show_doc(o, name=nm)._repr_markdown_() for o in impls)

def render_doc(src, ns, modname=None):
    "Markdown that the `show_doc` cell `src` displays, evaluated in namespace `ns` of module `modname`"
    *stmts, last = ast.parse(src).body
    exec(compile(ast.Module(stmts, []), '<show_doc>', 'exec'), ns)
    if not isinstance(last, ast.Expr): return ''
    res = _eval(last.value, ns)
    if res is None and isinstance(last.value, ast.Call) and last.value.args:
        arg = last.value.args[0]
        return dispatch_doc(_eval(arg, ns), ast.unparse(arg), modname)
    md = getattr(res, '_repr_markdown_', None)
    return md() if md else ''

def _is_export(c):
    d = c.directives_
    return c.cell_type == 'code' and bool({'export', 'exports'} & set(d)) and 'hide' not in d

def _shown(nb):
    "Names already documented by a `show_doc` call in `nb`"
    calls = re.findall(r'^show_doc\(\s*([\w.]+)', '\n'.join(c.source for c in nb.cells if c.cell_type == 'code'), re.M)
    return set(calls)

def _assigned(cell):
    "Names bound by the top-level assignments of `cell`"
    targets = [t for o in ast.parse(_code(cell.source)).body if isinstance(o, (ast.Assign, ast.AnnAssign))
               for t in (o.targets if isinstance(o, ast.Assign) else [o.target])]
    return [n.id for t in targets for n in ([t] if isinstance(t, ast.Name) else getattr(t, 'elts', [])) if isinstance(n, ast.Name)]

def _plain(v):
    "Is `v` made only of strings, numbers and containers of them (so its repr is its best documentation)?"
    if isinstance(v, (str, int, float, bool, type(None))): return True
    if isinstance(v, dict): return all(map(_plain, [*v.keys(), *v.values()]))
    return isinstance(v, (list, tuple, set, frozenset)) and all(map(_plain, v))

def name_doc(nm, val, cell):
    "Markdown documenting exported name `nm` (value `val`, defined in `cell`) like `show_doc` does a function"
    if _plain(val): code = f'{nm} = {pprint.pformat(val, width=100, sort_dicts=False)}'
    else: code = next(l for l in _code(cell.source).splitlines() if re.match(rf'\s*{nm}\b.*=', l))
    return f'### {nm}\n\n```python\n{code}\n```'

def proc_nb(path):
    "Notebook at `path` as nbdev's doc processors leave it (what `nbdev.serve.proc_nbs` writes to `_proc/`)"
    from fastcore.nbio import read_nb
    nb = read_nb(path)
    _mk_processors()()(nb)
    return nb

# ---- translate what only Quarto understands for MyST-NB

_re_opt = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
_re_callout = re.compile(r'^:::+\s*\{\.callout-(\w+)([^}]*)\}\s*$', re.M)
_re_div = re.compile(r'^:::+\s*\{[.#][^}]*\}\s*$', re.M)  # Quarto's divs: `::: {.class #id}`
_re_title = re.compile(r'title\s*=\s*"([^"]*)"')
_re_source = re.compile(r'\[source\]\((\S+?)\)\{[^}]*\}\s*\n+(#+ .*)')
_re_nblink = re.compile(r'(\]\()([^)#\s:]+)\.ipynb(#[^)\s]*)?(\))')
_callouts = dict(note='note', tip='tip', warning='warning', caution='caution', important='important')

def split_opts(src):
    "Quarto cell options (`#| key: value` lines) of code `src`, and the code without them"
    opts = {m[1]: m[2].strip('"\'') for l in src.splitlines() if (m := _re_opt.match(l))}
    return opts, _code(src).strip('\n')

def _callout(m):
    kind, title = m[1], _re_title.search(m[2])
    if title: return f':::{{admonition}} {title[1]}\n:class: {_callouts.get(kind, "note")}'
    return f':::{{{_callouts.get(kind, "note")}}}'

def fix_md(md, prefix):
    "Markdown `md` for MyST: links to the hosted site relative (`prefix` reaches the site root), callouts, show_doc"
    from nbdev.config import get_config, nbpath2html
    cfg = get_config()
    md = md.replace(f"{cfg.doc_host}{cfg.doc_baseurl}/", prefix)
    md = _re_nblink.sub(lambda m: f'{m[1]}{nbpath2html(m[2]+".ipynb").as_posix()}{m[3] or ""}{m[4]}', md)
    md = _re_callout.sub(_callout, md)
    md = _re_div.sub(':::', md)
    md = _re_source.sub(r'\2\n\n<a class="sd-source" href="\1" target="_blank">source</a>', md)
    return re.sub(r'\A\s*---\s*\n', '', md)

def title_md(fm, page):
    "Markdown for nbdev's front matter `fm` of `page`: the title (the page's name if none) and the description"
    title = fm.get('title') or page.split('/')[-1].replace('_', ' ').capitalize()
    return f"# {title}" + (f"\n\n{{.lead}}\n{fm['description']}" if fm.get('description') else '')

def _md_outputs(outs):
    "Text of the outputs shown `asis`: their markdown (or plain text), as Quarto inlines it"
    return '\n\n'.join(''.join(o['data'].get('text/markdown', '')) if 'data' in o else ''.join(o.get('text', '')) for o in outs)

def _fix_output(o, prefix):
    "Output `o` (a copy) with the links in its markdown made relative"
    import nbformat
    o = nbformat.from_dict(o)
    if 'text/markdown' in o.get('data', {}): o.data['text/markdown'] = fix_md(''.join(o.data['text/markdown']), prefix)
    return o

def to_myst_cells(cell, prefix):
    "Cells for MyST-NB made from processed `cell`, with Quarto's options `echo`, `output`, `include` applied"
    from nbformat.v4 import new_code_cell, new_markdown_cell
    if cell.cell_type == 'markdown':
        return [new_markdown_cell(fix_md(cell.source, prefix), **({'attachments': cell.attachments} if cell.get('attachments') else {}))]
    if cell.cell_type != 'code': return []
    opts, src = split_opts(cell.source)
    if opts.get('include') == 'false': return []
    outs = [] if opts.get('output') == 'false' else [_fix_output(o, prefix) for o in cell.get('outputs', [])]
    asis = opts.get('output') == 'asis'
    echo = opts.get('echo') != 'false' and bool(src.strip())
    res = []
    if echo or (outs and not asis):
        tags = [] if echo else ['remove-input']
        res.append(new_code_cell(src, outputs=[] if asis else outs, metadata=dict(tags=tags) if tags else {}))
    if asis and outs: res.append(new_markdown_cell(fix_md(_md_outputs(outs), prefix)))
    return res

def to_myst_nb(nb, page, extra=''):
    "The processed notebook `nb` as a notebook MyST-NB renders as page `page` (`extra`: markdown added at the end)"
    import nbformat, yaml
    from nbformat.v4 import new_notebook, new_markdown_cell
    prefix = '../' * page.count('/')
    cells, fm = list(nb.cells), {}
    if cells and cells[0].cell_type == 'raw' and cells[0].source.startswith('---'):
        fm = yaml.safe_load(cells.pop(0).source.strip().strip('-')) or {}
    out = [new_markdown_cell(fix_md(title_md(fm, page), prefix))]
    out += [c for cell in cells for c in to_myst_cells(cell, prefix)]
    if extra: out.append(new_markdown_cell(extra))
    res = new_notebook(cells=out, metadata=dict(kernelspec=dict(name='python3', display_name='Python 3', language='python'),
                                                 language_info=dict(name='python', pygments_lexer='ipython3')))
    nbformat.validate(res)
    return res

# ---- the Sphinx site

_captions = {1: 'API reference', 2: 'Tutorials', 3: 'More'}

def toctrees(rels):
    "Hidden toctrees for the index page: one sidebar section per group of pages"
    res = []
    for g, cap in _captions.items():
        names = [page_name(r) for r in rels if _group(r) == g]
        if names: res.append('```{toctree}\n:hidden:\n:caption: ' + cap + '\n\n' + '\n'.join(names) + '\n```')
    return '\n\n'.join(res)

_css = """.lead { font-size: 1.25em; opacity: .75; margin-top: -.5em; }
a.sd-source { float: right; font-size: smaller; }
.cell_output .output.text_plain, .cell_output .output.stream { max-height: 30em; overflow: auto; }
.cell_output img { max-width: 100%; height: auto; }
"""

def sphinx_conf(cfg):
    "Sphinx settings for the site"
    return dict(project=cfg.title, html_title=cfg.title, extensions=['myst_nb', 'sphinx-mathjax-offline', 'build_docs'],
                nb_execution_mode='off', nb_render_markdown_format='myst', myst_enable_extensions=['colon_fence', 'attrs_block', 'dollarmath', 'amsmath'],
                myst_all_links_external=True, html_theme='furo', html_static_path=['_static'], html_css_files=['docs.css'],
                html_show_sourcelink=False, html_copy_source=False, suppress_warnings=['myst.header'])

def write_sources(nbs, src):
    "Write every page of `nbs` into Sphinx source folder `src`, with the images the notebooks link to"
    import nbformat
    rels = doc_nbs(nbs)
    if Path('index.ipynb') not in rels: raise FileNotFoundError(f'{nbs/"index.ipynb"} is missing: it is the home page')
    names = [page_name(r) for r in rels]
    dups = {n for n in names if names.count(n) > 1}
    if dups: raise ValueError(f'Notebooks {[str(r) for r in rels if page_name(r) in dups]} would all become page(s) {sorted(dups)}')
    for rel, name in zip(rels, names):
        nb = to_myst_nb(proc_nb(nbs/rel), name, toctrees(rels) if name == 'index' else '')
        (src/name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, src/f'{name}.ipynb')
    for p in nbs.rglob('*'):
        if p.suffix.lower() in _img_exts and not _skip(p.relative_to(nbs)):
            (src/p.relative_to(nbs)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src/p.relative_to(nbs))
    (src/'_static').mkdir(exist_ok=True)
    (src/'_static'/'docs.css').write_text(_css)
    return names

def build(out=root/'_docs', work=root/'build'/'docs'):
    "Build the site from the notebooks into `out`, with the Sphinx sources and caches in `work`"
    from nbdev.config import get_config
    from nbdev.doclinks import _build_modidx
    from sphinx.application import Sphinx
    out, work = Path(out).absolute(), Path(work).absolute()
    os.chdir(root)
    cfg = get_config()
    _build_modidx()
    src, html = work/'sphinx', work/'html'  # MyST-NB writes next to Sphinx's output: keep that inside `work`
    for d in (src, html, work/'doctrees', work/'jupyter_execute', out): shutil.rmtree(d, ignore_errors=True)
    src.mkdir(parents=True)
    pages = write_sources(cfg.nbs_path, src)
    if str(Path(__file__).parent) not in sys.path: sys.path.insert(0, str(Path(__file__).parent))
    warnings = io.StringIO()
    app = Sphinx(str(src), None, str(html), str(work/'doctrees'), 'html', confoverrides=sphinx_conf(cfg),
                 status=None, warning=warnings, keep_going=True)
    app.build()
    sys.stderr.write(warnings.getvalue())
    if app.statuscode: raise SystemExit(f'Sphinx failed with status {app.statuscode}')
    shutil.copytree(html, out, ignore=shutil.ignore_patterns('.buildinfo', '_sources'))
    print(f"{len(pages)} pages in {out} ({warnings.getvalue().count('WARNING:')} warnings)")
    return out

# ---- Sphinx extension: Quarto's heading ids

def pandoc_id(text):
    "The id pandoc (so Quarto, so nbdev's links) gives a heading with `text`"
    s = re.sub(r'\s+', '-', re.sub(r'[^\w\s.-]', '', text.lower()).strip())
    return re.sub(r'^[^a-z]+', '', s) or 'section'

def _claim(doc, node, nid):
    "Make `nid` the first id of `node`, taking it from the node that had it (the page title's, as Quarto's has none)"
    old = doc.ids.get(nid)
    if old is not None and old is not node:
        old['ids'].remove(nid)
        if not old['ids']: old['ids'].append(f'{nid}-page')
    if nid in node['ids']: node['ids'].remove(nid)
    node['ids'].insert(0, nid)
    doc.ids[nid] = node

def quarto_ids(doc):
    "Give each section below the page title the id Quarto would (repeats get `-1`, `-2`...), so nbdev's links resolve"
    from docutils import nodes
    seen = set()
    for sec in doc.findall(nodes.section):
        if isinstance(sec.parent, nodes.document): continue
        nid = base = pandoc_id(sec[0].astext())
        for i in range(1, 1000):
            if nid not in seen: break
            nid = f'{base}-{i}'
        seen.add(nid)
        _claim(doc, sec, nid)

def resolve_anchor(frag, ids):
    "`frag` if it is one of `ids`, else the anchor of the class of an undocumented method (`task.setup` -> `task`), else None"
    while frag not in ids and '.' in frag: frag = frag.rsplit('.', 1)[0]
    return frag if frag in ids else None

def _link_target(uri, docname):
    "Page (document name) and anchor that relative link `uri` on page `docname` points to"
    path, _, frag = uri.partition('#')
    if not path: return docname, frag
    return posixpath.normpath(posixpath.join(posixpath.dirname(docname), path)).removesuffix('.html'), frag

def fix_anchors(app, doctree, docname):
    "Send links to an anchor their page lacks to the named method's class, else to the page (warning unless `#_private`)"
    from docutils import nodes
    from sphinx.util import logging
    ids = app.page_ids
    for ref in doctree.findall(nodes.reference):
        uri = ref.get('refuri', '')
        if '#' not in uri or re.match(r'[a-z][\w+.-]*:|//', uri): continue
        page, frag = _link_target(uri, docname)
        if page not in app.env.all_docs or not frag: continue
        if page not in ids: ids[page] = {i for n in app.env.get_doctree(page).findall(nodes.Element) for i in n['ids']}
        new = resolve_anchor(unquote(frag), ids[page])
        if new == unquote(frag): continue
        if new is None and not frag.startswith('_'): logging.getLogger(__name__).warning(f'{docname}: no anchor #{frag} on page {page}')
        ref['refuri'] = uri.partition('#')[0] + (f'#{new}' if new else '')

def setup(app):
    "Sphinx extension: Quarto's heading ids, and links to undocumented methods sent to their class"
    from docutils.transforms import Transform
    class QuartoIds(Transform):
        default_priority = 850
        def apply(self): quarto_ids(self.document)
    app.add_transform(QuartoIds)
    app.page_ids = {}
    app.connect('doctree-resolved', fix_anchors)
    return dict(parallel_read_safe=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=root/'_docs', type=Path, help='folder the site is written to (emptied first)')
    p.add_argument('--work', default=root/'build'/'docs', type=Path, help='folder for the Sphinx sources and caches (emptied)')
    a = p.parse_args()
    build(a.out, a.work)
