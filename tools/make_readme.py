"Write README.md from nbs/index.ipynb (nbdev-readme needs Quarto); `--check` fails if README.md is out of date."
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def cell_md(cell):
    "Markdown for one notebook cell: markdown as is, code fenced, cells with nbdev directives `#| hide` left out"
    src = ''.join(cell['source']).strip()
    if cell['cell_type'] == 'markdown': return src
    if cell['cell_type'] != 'code' or '#| hide' in src: return None
    code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
    return f'```python\n{code}\n```' if code else None

def readme_text(nb_path=root/'nbs'/'index.ipynb'):
    "The README.md text made from the notebook at `nb_path`"
    cells = json.loads(Path(nb_path).read_text())['cells']
    parts = [md for md in map(cell_md, cells) if md]
    return '<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = readme_text(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text: sys.exit('README.md is out of date: run `python tools/make_readme.py`')
        print('README.md is in sync with nbs/index.ipynb')
    else: readme.write_text(text); print(f'wrote {readme}')
