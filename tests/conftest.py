"""Shared test fixtures: a fresh graph per test, the sample data, tiny configs."""

import os
import pathlib
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
tf.compat.v1.disable_eager_execution()

# ../shared/data beside the checkout holds small samples of real datasets.
SHARED_DATA = pathlib.Path(os.environ.get('CYCLEGAN_SHARED_DATA',
                                          ROOT.parent / 'shared' / 'data'))


@pytest.fixture
def graph():
    """A fresh default graph, so no test sees another's variables."""
    g = tf.Graph()
    with g.as_default():
        yield g


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f'sample data not found at {SHARED_DATA}')
    return SHARED_DATA
