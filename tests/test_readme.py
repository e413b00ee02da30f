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
import importlib.util
import io
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import test_video
from conftest import ROOT, SAMPLE_DATA, file_server
from PIL import Image
from test_datasets import FACADES_URL_PATH, H2Z_URL_PATH, _tar_tree, _zip_tree

SCRIPTS = ('train.py', 'sample.py', 'evaluate.py', 'bench.py', 'export.py', 'import_torch.py')
# Lines of the README's code blocks that this test does not run, by prefix.
NOT_RUN = {
    'pip install': "installing: .ci/run installs the requirements, tests/test_install.py "
                   "installs the package",
    'python -m pytest': 'the test suite itself',
    'cyclegan-': 'the installed console commands: tests/test_install.py runs them',
    'docker ': 'TF Serving cannot be installed on these machines (the README says so)',
    'curl ': "a request to TF Serving's REST API, which is not installed here",
    'python demo.py': 'serves a page until stopped: tests/test_demo.py serves it and drives it '
                      'in headless Chromium',
    'TF_CONFIG=': 'a cluster of machines: tests/test_distribute.py runs two workers on '
                  '127.0.0.1',
}
# README lines that need an optional requirements file: (text in the line, its
# modules, the file). They skip without it, naming it, and fail when CI=true.
OPTIONAL = [('--format onnx', ('tf2onnx', 'onnx'), 'requirements-onnx.txt'),
            ('onnxruntime', ('onnxruntime',), 'requirements-onnx.txt')]
IMAGE_MODEL = ['--crop_size=32', '--load_size=32', '--ngf=4', '--ndf=4',
               '--netG=resnet_6blocks', '--max_steps=2', '--print_freq=1', '--eval_num=2']
TOY = ['--steps_per_epoch=5', '--n_epochs=1', '--n_epochs_decay=1', '--hidden_units=8']
APPENDED = {
    'sample.py': ['--num_test=2'],
    'evaluate.py': ['--num_test=2'],
    'bench.py': ['--crop_size=32', '--load_size=36', '--ngf=4', '--ndf=4',
                 '--netG=resnet_6blocks', '--iters=1', '--warmup=0', '--infer_batch_size=1',
                 '--rounds=1', '--feature_images=0'],  # test_train times the features
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


workspace_server = []


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A working folder, a dataset server, and the files the README names."""
    folder = tmp_path_factory.mktemp('readme')
    shutil.copytree(SAMPLE_DATA / 'horse2zebra_tiny', folder / 'my_data')
    shutil.copytree(ROOT / 'presets', folder / 'presets')
    Image.fromarray(np.full((40, 52, 3), 120, np.uint8)).save(folder / 'photo.jpg')
    Image.fromarray(np.full((36, 36, 3), 90, np.uint8)).save(folder / 'horse.png')
    (folder / 'photos').mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 40, 3), 60 * i, np.uint8)).save(folder / 'photos' / f'{i}.png')
    files = {H2Z_URL_PATH: _zip_tree(SAMPLE_DATA / 'horse2zebra_tiny', 'horse2zebra'),
             FACADES_URL_PATH: _tar_tree(SAMPLE_DATA / 'facades_tiny', 'facades')}
    old = os.getcwd()
    with file_server(files) as httpd, pytest.MonkeyPatch.context() as patch:
        workspace_server[:] = [httpd]
        os.chdir(folder)
        patch.setenv('CYCLEGAN_DATASETS_URL', httpd.url)
        patch.setenv('XDG_CACHE_HOME', str(folder / 'cache'))
        try:
            yield folder
        finally:
            os.chdir(old)


def test_every_line_is_run_or_said_why_not():
    lines = readme_lines()
    assert len(COMMANDS) >= 15
    for language, line in lines:
        runnable = language == 'python' or line.split()[:2][-1] in SCRIPTS or \
            line.startswith('tensorboard')
        assert runnable or any(line.startswith(p) for p in NOT_RUN), line


def _needs_fixtures(argv):
    """Whether a command needs ../shared/fixtures: the FID weights, official
    networks to import, or a run imported from them."""
    imported = ('_pretrained', 'horse2zebra_cyclegan', 'my_h2z')
    return (any(a.startswith('--eval_freq') for a in argv)
            or argv[0] in ('evaluate.py', 'import_torch.py')
            or any(name in a for name in imported for a in argv))


TRAIN_OPT = """----------------- Options ---------------
                 dataroot: ./datasets/horse2zebra
                    model: cycle_gan
                     name: horse2zebra_cyclegan
                      ndf: 8
                     netD: basic
                     netG: resnet_9blocks
                      ngf: 8
                no_dropout: True
                     norm: instance
                 crop_size: 32
                 load_size: 32
----------------- End -------------------
"""


def _official_models(argv, fixtures, server, monkeypatch):
    """What import_torch.py's README commands read, at the fixtures' sizes:
    the published models (ngf 8) on the test's server, a user's state
    dicts, a training folder of the official code."""
    from cyclegan_tf import import_torch

    folder = fixtures / 'torch_reference'
    for model, size in (('cycle_gan', 32), ('pix2pix', 256)):  # unet_256 needs 256 px
        monkeypatch.setitem(import_torch.PRETRAINED_ARCHITECTURE, model, dict(
            import_torch.PRETRAINED_ARCHITECTURE[model], ngf=8, crop_size=size, load_size=size))
    server.files['/cyclegan/pretrained_models/horse2zebra.pth'] = (
        folder / 'resnet_9blocks_ngf8.legacy.pth').read_bytes()
    server.files['/pix2pix/models-pytorch/facades_label2photo.pth'] = (
        folder / 'unet_256_ngf8_batch.legacy.pth').read_bytes()
    for net in ('G_A', 'G_B'):
        shutil.copy(folder / 'resnet_9blocks_ngf8.pth', f'latest_net_{net}.pth')
    official = os.path.join('checkpoints', 'horse2zebra_cyclegan')
    os.makedirs(official, exist_ok=True)
    with open(os.path.join(official, 'train_opt.txt'), 'w') as f:
        f.write(TRAIN_OPT)
    for net, case in (('G_A', 'resnet_9blocks_ngf8'), ('G_B', 'resnet_9blocks_ngf8'),
                      ('D_A', 'patchgan_basic_ndf8'), ('D_B', 'patchgan_basic_ndf8')):
        shutil.copy(folder / f'{case}.pth', os.path.join(official, f'150_net_{net}.pth'))
    if argv[0] == 'import_torch.py':
        argv.append(f'--download_url={server.url}')
        if any(a.startswith('--pth') for a in argv):
            argv.append('--ngf=8')


def _existing_run(argv):
    """Whether train.py's command line names a run that exists (it resumes:
    no architecture flags to add)."""
    for i, arg in enumerate(argv):
        name = arg[len('--name='):] if arg.startswith('--name=') else (
            argv[i + 1] if arg == '--name' and i + 1 < len(argv) else None)
        if name and os.path.isdir(os.path.join('runs', name)):
            return True
    return False


def _run_script(argv):
    """Exit status and output of the script argv[0] run in this process (in
    a subprocess with --num_replicas: its devices are set once per process)."""
    import importlib

    if any(a.startswith('--num_replicas') for a in argv):
        done = subprocess.run([sys.executable, str(ROOT / argv[0]), *argv[1:]],
                              capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr

    module = importlib.import_module(f'cyclegan_tf.{argv[0][:-3]}')
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = module.main(argv)
    return status, out.getvalue() + err.getvalue()


@pytest.mark.parametrize('item', COMMANDS, ids=[_id(item) for item in COMMANDS])
def test_readme_command(item, workspace, request, monkeypatch):
    language, line = item
    _check_optional(line)
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
    if 'clip.mp4' in line:  # PyAV makes it; without PyAV the test skips (fails in CI)
        test_video.make_video('clip.mp4', 6, audio='aac')
    if _needs_fixtures(argv):
        fixtures = request.getfixturevalue('fixtures_dir')
        if script in ('evaluate.py', 'train.py'):
            argv.append(f'--fid_weights={fixtures / "fid" / FID_WEIGHTS}')
        _official_models(argv, fixtures, workspace_server[0], monkeypatch)
    if script == 'train.py':
        toy = '--model' in argv and argv[argv.index('--model') + 1] == 'toy_gan'
        argv += ['--max_steps=1'] if _existing_run(argv) else TOY if toy else IMAGE_MODEL
    argv += APPENDED.get(script, [])
    status, output = _run_script(argv)
    assert status == 0, f'{line}\n{output[-3000:]}'


def _check_optional(line):
    for text, modules, requirements in OPTIONAL:
        missing = [m for m in modules if text in line and importlib.util.find_spec(m) is None]
        if missing:
            message = f'{", ".join(missing)} not installed (pip install -r {requirements})'
            if os.environ.get('CI') == 'true':
                pytest.fail(message)
            pytest.skip(message)


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
        # The graph TensorBoard serves has the top-level boxes the README names.
        url = f'http://127.0.0.1:{port}/data/plugin/graphs/graph?run=quickstart&conceptual=false'
        with urllib.request.urlopen(url, timeout=30) as r:
            graph = r.read().decode()
        boxes = set(re.findall(r'name: "([^/"]+)/', graph))
        readme = (ROOT / 'README.md').read_text()
        for box in ('G_A', 'G_B', 'D_A', 'D_B', 'data', 'inputs', 'losses', 'image_pool',
                    'optimizers', 'summaries', 'checks'):
            assert box in boxes and f'`{box}`' in readme, box
    finally:
        process.terminate()
        process.wait(10)
