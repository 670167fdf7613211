import importlib, os, shutil, sys
from pathlib import Path
import pytest
from fastai_mtl.all import make_shapes, Tasks, CategoryTask, RegressionTask, MultiCategoryTask
sys.path.insert(0, str(Path(__file__).parents[1]/'tools'))
from chromium import free_port # noqa: F401 (for the tests: `from conftest import free_port`)

@pytest.fixture(scope='session')
def shapes(tmp_path_factory):
    "The generated shapes dataset: (path, DataFrame)"
    path = tmp_path_factory.mktemp('shapes')
    return path, make_shapes(path, n=600, seed=1)

def shape_tasks():
    return Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks', weight=0.5))

@pytest.fixture(scope='module')
def chromium():
    "Path of the `chromium` binary; skip without it, fail without it if FASTAI_MTL_REQUIRE_BROWSER=1"
    binary = shutil.which('chromium')
    if binary is None:
        if os.environ.get('FASTAI_MTL_REQUIRE_BROWSER') == '1': pytest.fail('FASTAI_MTL_REQUIRE_BROWSER=1 but `chromium` is not installed')
        pytest.skip('headless browser checks need Debian `chromium` (apt-get install chromium)')
    return binary

def require(name):
    "`pytest.importorskip(name)`; a failure instead when FASTAI_MTL_REQUIRE_DEPS=1 (as `.ci/run` sets): there a missing test dependency is a broken install"
    if os.environ.get('FASTAI_MTL_REQUIRE_DEPS') != '1': return pytest.importorskip(name)
    try: return importlib.import_module(name)
    except ImportError as e: pytest.fail(f"FASTAI_MTL_REQUIRE_DEPS=1 but the test dependency {name!r} cannot be imported ({e}): install the dev extra")
