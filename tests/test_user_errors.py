"""Bad command lines end to end through train.main: exit status 2, one line
on stderr, and nothing created. These fail while parsing, before any data or
TensorFlow graph, so each costs milliseconds. The dataset named does not
exist: a check that let a bad value through fails at once, never trains."""

import os

import pytest

from cyclegan_tf import train


def _fails_cleanly(capsys, tmp_path, *args):
    """Runs train.py with ``args``; asserts exit 2, one line on stderr and an
    untouched tmp_path (runs_dir and data_root inside it); returns the line."""
    runs_dir, data_root = tmp_path / 'runs', tmp_path / 'datasets'
    runs_dir.mkdir()
    capsys.readouterr()
    assert train.main(['train.py', f'--runs_dir={runs_dir}', f'--data_root={data_root}',
                       '--dataset=no_such_dataset', *args]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('train.py: error: '), err
    assert sorted(os.listdir(tmp_path)) == ['runs'] and os.listdir(runs_dir) == []
    return err


@pytest.mark.parametrize('flag, message', [
    ('--batch_size=0', 'flag --batch_size=0: must be an integer >= 1'),
    ('--batch_size=-1', 'flag --batch_size=-1: must be an integer >= 1'),
    ('--max_steps=-1', 'flag --max_steps=-1: must be an integer >= 0'),
    ('--lr=-1', 'flag --lr=-1.0: must be a finite number > 0'),
    ('--lr=nan', 'flag --lr=nan: must be a finite number > 0'),
    ('--pool_size=-1', 'flag --pool_size=-1: must be an integer >= 0'),
    ('--beta1=1', 'flag --beta1=1.0: must be a number in [0, 1)'),
    ('--keep_checkpoints=-1', 'flag --keep_checkpoints=-1: must be an integer >= 0'),
])
def test_numbers_out_of_range_are_one_line_and_create_nothing(capsys, tmp_path, flag, message):
    assert message in _fails_cleanly(capsys, tmp_path, flag)


@pytest.mark.parametrize('name', ['../x', '/abs/path', '.'])
def test_a_run_name_outside_runs_dir_is_one_line_and_creates_nothing(capsys, tmp_path, name):
    assert 'name must be one folder name' in _fails_cleanly(capsys, tmp_path, f'--name={name}')
    assert not os.path.exists('/abs/path')


@pytest.mark.parametrize('url', ['file:///etc/passwd#', 'ftp://127.0.0.1/', 'not a url',
                                 'http://[::1'])
def test_a_download_url_that_is_not_http_is_one_line_and_creates_nothing(capsys, tmp_path, url):
    assert 'download_url ' in _fails_cleanly(capsys, tmp_path, f'--download_url={url}')


def test_a_name_that_is_not_utf8_is_one_line_and_creates_nothing(capsys, tmp_path):
    line = _fails_cleanly(capsys, tmp_path, '--name=' + os.fsdecode(b'x\xff'))
    assert 'name must be valid UTF-8 text' in line
