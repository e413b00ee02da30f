"""`pip install .` and `pip install -e .` into fresh virtual environments: one
package, cyclegan_tf, with its folders, the presets and the console commands,
and nothing generic (config, data, model, train, ...) at the top level of
site-packages or of sys.modules: a user's own modules of those names stay theirs.

The environments are made without pip and without packages of their own; a
.pth file lets them see this interpreter's packages (TensorFlow, absl,
setuptools) instead of installing them, and the test's pip installs into
them with --python, --no-deps, --no-build-isolation and --no-index: no
network, about 10 s an install. The source is a copy of the repository, so
no build/ or egg-info lands in the checkout and no stale build/ is packaged.
"""

import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig

import isort
import pytest

from cyclegan_tf.running import commands

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ('data', 'evaluation', 'interop', 'models', 'running')
# Every module of the package, as a path relative to its folder: 'config.py', 'data/pipeline.py'.
MODULES = sorted(str(path.relative_to(ROOT)) for path in
                 [*ROOT.glob('*.py'), *(p for f in FOLDERS for p in (ROOT / f).glob('*.py'))])
COMMANDS = ('cyclegan-train', 'cyclegan-sample', 'cyclegan-evaluate', 'cyclegan-bench',
            'cyclegan-export', 'cyclegan-import-torch', 'cyclegan-demo')
# Generic names a user's own code may well have: they must stay the user's.
USER_MODULES = ('config', 'data', 'datasets', 'model', 'models', 'runs', 'metrics', 'train',
                'registry', 'inference')
# The names of .gitignore, and .git: what a fresh clone does not have.
NOT_SOURCE = shutil.ignore_patterns('.git', '*.egg-info', '*.pyc', '__pycache__', '.gl',
                                    '.pytest_cache', '.venv', '.whl', 'build', 'datasets',
                                    'results', 'runs', 'venv')


def make_venv(path):
    """A virtual environment at ``path`` without pip that sees this interpreter's packages."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
    paths = {'base': str(path), 'platbase': str(path)}
    purelib = pathlib.Path(sysconfig.get_path('purelib', vars=paths))
    ours = site.getsitepackages() + [site.getusersitepackages()]
    (purelib / 'test_env.pth').write_text(''.join(f'{p}\n' for p in ours if os.path.isdir(p)))
    return purelib


def pip_install(venv, *args):
    subprocess.run([sys.executable, '-m', 'pip', '--python', str(venv / 'bin' / 'python'),
                    'install', '--no-deps', '--no-build-isolation', '--no-index',
                    '--disable-pip-version-check', '--quiet', *args],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    src = tmp_path_factory.mktemp('install') / 'src'
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    return src


@pytest.fixture(scope='module')
def installed(source):
    """(venv, its site-packages) after ``pip install .``"""
    venv = source.parent / 'venv'
    purelib = make_venv(venv)
    pip_install(venv, str(source))
    return venv, purelib


@pytest.fixture(scope='module')
def editable(source):
    venv = source.parent / 'venv_editable'
    purelib = make_venv(venv)
    pip_install(venv, '-e', str(source))
    return venv, purelib


@pytest.fixture
def elsewhere(tmp_path):
    """A folder with modules of its own named as ours are (config.py, data.py,
    datasets.py, model.py, ...), each recording that it was imported."""
    for name in USER_MODULES:
        (tmp_path / f'{name}.py').write_text(f"WHOSE = 'the user\\'s {name}.py'\n")
    return tmp_path


def run_in(folder, *command):
    """``command`` run in ``folder`` with ``folder`` also on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(folder), TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([str(part) for part in command], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_install_puts_every_module_and_the_presets_in_one_package(installed):
    venv, purelib = installed
    top_level = {path.name for path in purelib.iterdir()} - {'test_env.pth', '__pycache__'}
    assert top_level == {'cyclegan_tf', 'cyclegan_tf-0.1.0.dist-info'}
    package = purelib / 'cyclegan_tf'
    assert sorted(str(p.relative_to(package)) for p in package.rglob('*.py')) == MODULES
    assert (package / 'presets' / 'quickstart.flags').read_text() == \
        (ROOT / 'presets' / 'quickstart.flags').read_text()
    assert not (package / 'tests').exists() and not (package / 'tools').exists()
    for command in COMMANDS:
        assert (venv / 'bin' / command).is_file()


def test_console_command_runs_our_modules_from_a_folder_with_its_own(installed, elsewhere):
    venv, purelib = installed
    result = run_in(elsewhere, venv / 'bin' / 'cyclegan-train', '--help')
    assert result.returncode == 0, result.stderr
    assert 'Trains a model' in result.stdout and '--n_epochs_decay' in result.stdout
    result = run_in(elsewhere, venv / 'bin' / 'python', '-m', 'cyclegan_tf.sample', '--help')
    assert result.returncode == 0, result.stderr
    assert 'Samples from a trained run' in result.stdout


def test_installed_presets_are_found_from_any_folder(installed, elsewhere):
    """The quick start's --flagfile is read from the package: the command gets
    past the flags to the dataset, which is missing."""
    venv, purelib = installed
    result = run_in(elsewhere, venv / 'bin' / 'cyclegan-train', '--flagfile',
                    'presets/quickstart.flags', f'--dataset={elsewhere / "none"}')
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1 and 'no dataset folder' in result.stderr
    assert result.stderr.startswith('cyclegan-train: error: ')  # the command's own name


USER_MODULES_STAY = """
import sys
names = {names!r}
before = {{name: __import__(name).WHOSE for name in names[:3]}}
import cyclegan_tf.inference
from cyclegan_tf.inference import Translator
from cyclegan_tf import registry
registry.get('cycle_gan').model_class  # the graph code too: TensorFlow, models/
after = {{name: __import__(name).WHOSE for name in names}}
ours = sorted(name for name, module in sys.modules.items()
              if '.' not in name and 'cyclegan_tf' in (getattr(module, '__file__', None) or '')
              and name != 'cyclegan_tf')
print(before, after, ours, Translator.from_run.__qualname__, sep='\\n')
"""


def test_a_users_own_modules_stay_theirs_before_and_after_ours(installed, elsewhere):
    """The README's Python API in a folder holding config.py, datasets.py,
    model.py, ... of its own: each of them imports as the user's, before and
    after cyclegan_tf (its graph code too), and no module of ours lands at the
    top level of sys.modules."""
    venv, purelib = installed
    script = USER_MODULES_STAY.format(names=USER_MODULES)
    result = run_in(elsewhere, venv / 'bin' / 'python', '-c', script)
    assert result.returncode == 0, result.stderr
    before, after, ours, qualname = result.stdout.strip().splitlines()[-4:]
    assert before == repr({name: f"the user's {name}.py" for name in USER_MODULES[:3]})
    assert after == repr({name: f"the user's {name}.py" for name in USER_MODULES})
    assert ours == '[]' and qualname == 'Translator.from_run'


def test_editable_install_runs_the_source(editable, source, elsewhere):
    venv, purelib = editable
    assert not any(path.suffix == '.py' and path.name in MODULES for path in purelib.iterdir())
    result = run_in(elsewhere, venv / 'bin' / 'python', '-c',
                    'import cyclegan_tf.config as c, cyclegan_tf.data.pipeline as p; '
                    'print(c.__file__, p.__file__)')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(source / 'config.py'),
                                     str(source / 'data' / 'pipeline.py')]
    result = run_in(elsewhere, venv / 'bin' / 'cyclegan-train', '--help')
    assert result.returncode == 0, result.stderr
    assert 'Trains a model' in result.stdout


def test_flagfiles_resolve_to_the_package_only_when_missing_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = str(ROOT / 'presets' / 'quickstart.flags')
    resolve = commands.resolve_flagfiles
    assert resolve(['--flagfile', 'presets/quickstart.flags', '--ngf=8']) == \
        ['--flagfile', preset, '--ngf=8']
    assert resolve(['-flagfile=presets/quickstart.flags']) == [f'-flagfile={preset}']
    assert resolve(['--flagfile=presets/mine.flags', '--flagfile']) == \
        ['--flagfile=presets/mine.flags', '--flagfile']
    (tmp_path / 'presets').mkdir()
    (tmp_path / 'presets' / 'quickstart.flags').write_text('--ngf=8\n')
    assert resolve(['--flagfile=presets/quickstart.flags']) == \
        ['--flagfile=presets/quickstart.flags']


def test_isort_knows_the_package_as_ours():
    settings = isort.Config(settings_path=str(ROOT))
    assert isort.place_module('cyclegan_tf', config=settings) == 'FIRSTPARTY'
    assert isort.place_module('cyclegan_tf.data.pipeline', config=settings) == 'FIRSTPARTY'
