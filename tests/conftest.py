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

# Tiny real images committed with the tests (tests/data/README.md).
SAMPLE_DATA = ROOT / 'tests' / 'data'
# ../shared/fixtures holds reference files too large for the repository
# (official PyTorch networks and outputs, the FID Inception weights).
SHARED_FIXTURES = pathlib.Path(os.environ.get('CYCLEGAN_SHARED_FIXTURES',
                                              ROOT.parent / 'shared' / 'fixtures'))


@pytest.fixture
def graph():
    """A fresh default graph, so no test sees another's variables."""
    g = tf.Graph()
    with g.as_default():
        yield g


@pytest.fixture
def sample_data():
    """tests/data: horse2zebra_tiny (unaligned, 48x48), facades_tiny (aligned,
    64x32 A|B) and misc/ (an RGBA PNG, a non-square JPEG). Read only: build
    archives or other layouts from it under tmp_path."""
    return SAMPLE_DATA


@pytest.fixture
def fixtures_dir():
    """``../shared/fixtures``: skips the test where it is absent, with a
    reason naming it, and fails instead when CI=true (CI always has it)."""
    if not SHARED_FIXTURES.is_dir():
        message = (f'reference fixtures not found at {SHARED_FIXTURES} '
                   f'(../shared/fixtures, too large for the repository)')
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_FIXTURES
