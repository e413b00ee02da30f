"""Every command of the README's code blocks runs, so an advertised command
cannot break unnoticed.

The commands run in the README's order, in one folder (a user's working
copy: runs/ and datasets/ accumulate, later commands use earlier runs), each
through its script's main() with tiny sizes appended (later flags win). The
named datasets come from a server on 127.0.0.1 serving archives of
tests/data in the official servers' layout ($CYCLEGAN_DATASETS_URL). What is
not run here, and why, is in NOT_RUN; a README line that is neither run nor
listed there fails the test of the README's coverage.
"""

import contextlib
import http.server
import io
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from conftest import ROOT, SAMPLE_DATA
from PIL import Image
from test_datasets import FACADES_URL_PATH, H2Z_URL_PATH, _Handler, _tar_tree, _zip_tree

SCRIPTS = ('train.py', 'sample.py', 'evaluate.py', 'bench.py', 'export.py', 'import_torch.py')
# Lines of the README's code blocks that this test does not run, by prefix.
NOT_RUN = {
    'pip install': "installing: .ci/run installs the requirements, tests/test_install.py "
                   "installs the package",
    'python -m pytest': 'the test suite itself',
    'cyclegan-': 'the installed console commands: tests/test_install.py runs them',
    'docker ': 'TF Serving cannot be installed on these machines (the README says so)',
    'curl ': "a request to TF Serving's REST API, which is not installed here",
}
IMAGE_MODEL = ['--crop_size=32', '--load_size=32', '--ngf=4', '--ndf=4',
               '--netG=resnet_6blocks', '--max_steps=2', '--print_freq=1', '--eval_num=2']
TOY = ['--steps_per_epoch=5', '--n_epochs=1', '--n_epochs_decay=1', '--hidden_units=8']
APPENDED = {
    'sample.py': ['--num_test=2'],
    'evaluate.py': ['--num_test=2'],
    'bench.py': ['--crop_size=32', '--load_size=36', '--ngf=4', '--ndf=4',
                 '--netG=resnet_6blocks', '--iters=1', '--warmup=0', '--infer_batch_size=1',
                 '--rounds=1', '--feature_images=2', '--feature_batch=2'],
}
FID_WEIGHTS = 'pt_inception-2015-12-05_from_nvlabs_noFC.pth'
# The README's stand-ins, and what they stand for here.
STAND_INS = {'/path/to/my_data': 'my_data', 'model.ckpt-2000': 'model.ckpt-2',
             'test_2000': 'test_2'}


def readme_lines():
    """(language, line) of every line of the README's code blocks, commands
    joined across '\\' continuations, comments dropped."""
    text = (ROOT / 'README.md').read_text()
    found = []
    for language, block in re.findall(r'```(\w*)\n(.*?)```', text, re.S):
        if language == 'python':
            found.append(('python', block))
            continue
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split('  #')[0].strip()
            if line and not line.startswith('#'):
                found.extend((language, part.strip()) for part in line.split('&&'))
    return found


def _id(item):
    language, line = item
    return line.splitlines()[0][:60] if language != 'python' else 'python: ' + \
        next(x for x in line.splitlines() if x and not x.startswith(('from', 'import')))[:50]


COMMANDS = [item for item in readme_lines()
            if not any(item[1].startswith(prefix) for prefix in NOT_RUN)]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A working folder, a dataset server, and the files the README names."""
    folder = tmp_path_factory.mktemp('readme')
    shutil.copytree(SAMPLE_DATA / 'horse2zebra_tiny', folder / 'my_data')
    shutil.copytree(ROOT / 'presets', folder / 'presets')
    Image.fromarray(np.full((40, 52, 3), 120, np.uint8)).save(folder / 'photo.jpg')
    Image.fromarray(np.full((36, 36, 3), 90, np.uint8)).save(folder / 'horse.png')
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    httpd.daemon_threads = True
    httpd.files, httpd.tricks, httpd.requests = {}, {}, []
    httpd.files[H2Z_URL_PATH] = _zip_tree(SAMPLE_DATA / 'horse2zebra_tiny', 'horse2zebra')
    httpd.files[FACADES_URL_PATH] = _tar_tree(SAMPLE_DATA / 'facades_tiny', 'facades')
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    old = os.getcwd()
    os.chdir(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('CYCLEGAN_DATASETS_URL', f'http://127.0.0.1:{httpd.server_address[1]}')
        patch.setenv('XDG_CACHE_HOME', str(folder / 'cache'))
        yield folder
    os.chdir(old)
    httpd.shutdown()
    httpd.server_close()


def test_every_line_is_run_or_said_why_not():
    lines = readme_lines()
    assert len(COMMANDS) >= 15
    for language, line in lines:
        runnable = language == 'python' or line.split()[:2][-1] in SCRIPTS or \
            line.startswith('tensorboard')
        assert runnable or any(line.startswith(p) for p in NOT_RUN), line


def _needs_fixtures(argv):
    return any(a.startswith('--eval_freq') for a in argv) or argv[0] == 'evaluate.py' or \
        (argv[0] == 'import_torch.py' and not any(a.startswith('--pth') for a in argv))


def _run_script(argv):
    """Exit status and output of the script argv[0] run in this process."""
    import importlib

    module = importlib.import_module(argv[0][:-3])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = module.main(argv)
    return status, out.getvalue() + err.getvalue()


@pytest.mark.parametrize('item', COMMANDS, ids=[_id(item) for item in COMMANDS])
def test_readme_command(item, workspace, request):
    language, line = item
    for stand_in, here in STAND_INS.items():
        line = line.replace(stand_in, here)
    if language == 'python':
        namespace = {}
        exec(compile(line, 'README.md', 'exec'), namespace)
        return
    if line.startswith('tensorboard'):
        return _tensorboard(shlex.split(line))
    argv = shlex.split(line)[1:]  # without 'python'
    script = argv[0]
    if _needs_fixtures(argv):
        fixtures = request.getfixturevalue('fixtures_dir')
        argv.append(f'--fid_weights={fixtures / "fid" / FID_WEIGHTS}')
    if script == 'train.py':
        toy = '--model' in argv and argv[argv.index('--model') + 1] == 'toy_gan'
        argv += TOY if toy else IMAGE_MODEL
    argv += APPENDED.get(script, [])
    status, output = _run_script(argv)
    assert status == 0, f'{line}\n{output[-3000:]}'


def _tensorboard(argv):
    """Starts TensorBoard on the runs so far and asks it which runs it sees."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    command = [os.path.join(os.path.dirname(sys.executable), 'tensorboard'), *argv[1:],
               '--port', str(port), '--host', '127.0.0.1']
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, runs = time.time() + 60, ''
        while time.time() < deadline and 'quickstart' not in runs:
            time.sleep(1)
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/data/runs', timeout=5) as r:
                    runs = r.read().decode()
        assert 'quickstart' in runs, runs
    finally:
        process.terminate()
        process.wait(10)
