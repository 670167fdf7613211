import pytest
from fastai_mtl.all import make_shapes, Tasks, CategoryTask, RegressionTask, MultiCategoryTask

@pytest.fixture(scope='session')
def shapes(tmp_path_factory):
    "The generated shapes dataset: (path, DataFrame)"
    path = tmp_path_factory.mktemp('shapes')
    return path, make_shapes(path, n=600, seed=1)

def shape_tasks():
    return Tasks(CategoryTask('shape'), CategoryTask('color'), RegressionTask('size'), MultiCategoryTask('marks', weight=0.5))
