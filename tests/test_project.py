"The project's own consistency: generated modules match the notebooks, notebooks are clean, README matches index.ipynb."
import shutil, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
bin_dir = Path(sys.executable).parent

def _copy_project(tmp_path):
    for f in ('pyproject.toml', 'README.md', 'LICENSE'): shutil.copy(root/f, tmp_path/f)
    shutil.copytree(root/'nbs', tmp_path/'nbs')
    shutil.copytree(root/'fastai_mtl', tmp_path/'fastai_mtl', ignore=shutil.ignore_patterns('__pycache__'))
    return tmp_path

def _files(path, pattern): return {p.relative_to(path): p.read_text() for p in sorted(path.glob(pattern))}

def test_modules_match_notebooks(tmp_path):
    proj = _copy_project(tmp_path)
    subprocess.run([bin_dir/'nbdev-export'], cwd=proj, check=True, capture_output=True)
    assert _files(proj/'fastai_mtl', '*.py') == _files(root/'fastai_mtl', '*.py'), "run nbdev-export and commit the modules"

def test_notebooks_are_clean(tmp_path):
    proj = _copy_project(tmp_path)
    subprocess.run([bin_dir/'nbdev-clean'], cwd=proj, check=True, capture_output=True)
    assert _files(proj/'nbs', '*.ipynb') == _files(root/'nbs', '*.ipynb'), "run nbdev-clean and commit the notebooks"

def test_readme_matches_index():
    out = subprocess.run([sys.executable, root/'tools'/'make_readme.py', '--check'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

def test_readme_has_both_commands():
    readme = (root/'README.md').read_text()
    assert '.venv/bin/fastai-mtl demo' in readme
    assert '# run the tests\n' in readme
