"""`pip install .` and `pip install -e .` into fresh virtual environments: one
package, cyclegan_tf, with the presets and the console commands, and nothing
generic (config, data, model, train, ...) at the top level of site-packages.

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

import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = sorted(path.stem for path in ROOT.glob('*.py'))
COMMANDS = ('cyclegan-train', 'cyclegan-sample', 'cyclegan-evaluate', 'cyclegan-bench',
            'cyclegan-export', 'cyclegan-import-torch')
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
    """A folder with its own config.py, data.py, model.py and train.py."""
    for name in ('config', 'data', 'model', 'train'):
        (tmp_path / f'{name}.py').write_text(f"raise SystemExit('the user\\'s {name}.py')\n")
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
    assert sorted(path.stem for path in package.glob('*.py')) == MODULES
    assert (package / 'presets' / 'quickstart.flags').read_text() == \
        (ROOT / 'presets' / 'quickstart.flags').read_text()
    assert not (package / 'tests').exists()
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


def test_python_api_is_the_package_and_one_copy_of_each_module(installed, elsewhere):
    venv, purelib = installed
    script = ('import sys\n'
              'import cyclegan_tf.inference\n'
              'from cyclegan_tf import inference, registry\n'
              'import inference as plain\n'
              'assert inference is plain is cyclegan_tf.inference\n'
              'assert inference.__spec__.name == "inference"\n'
              'print(inference.Translator.from_run.__qualname__)\n'
              'print(sys.modules["config"].__file__)\n')
    result = run_in(elsewhere, venv / 'bin' / 'python', '-c', script)
    assert result.returncode == 0, result.stderr
    config_file = purelib / 'cyclegan_tf' / 'config.py'
    assert result.stdout.split() == ['Translator.from_run', str(config_file)]


def test_a_module_of_ours_imported_from_elsewhere_first_is_one_line(installed, tmp_path):
    venv, purelib = installed
    (tmp_path / 'config.py').write_text('')
    result = run_in(tmp_path, venv / 'bin' / 'python', '-c', 'import config, cyclegan_tf')
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"ImportError: cyclegan_tf needs the module name 'config', but 'config' is already "
        f"imported from {tmp_path / 'config.py'}; import cyclegan_tf before it, or rename it")


def test_editable_install_runs_the_source(editable, source, elsewhere):
    venv, purelib = editable
    assert not any(path.suffix == '.py' and path.stem in MODULES for path in purelib.iterdir())
    result = run_in(elsewhere, venv / 'bin' / 'python', '-c',
                    'import cyclegan_tf.config as c; print(c.__file__)')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(source / 'config.py')
    result = run_in(elsewhere, venv / 'bin' / 'cyclegan-train', '--help')
    assert result.returncode == 0, result.stderr
    assert 'Trains a model' in result.stdout


def test_a_command_whose_script_is_missing_is_one_line(capsys):
    assert cli.run('no_such_script', 'cyclegan-nothing', ['--help']) == 2
    assert capsys.readouterr().err == ('cyclegan-nothing: error: this installation has no '
                                       'no_such_script.py; install a version of cyclegan-tf '
                                       'that has it\n')


def test_flagfiles_resolve_to_the_package_only_when_missing_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = str(ROOT / 'presets' / 'quickstart.flags')
    assert cli.resolve_flagfiles(['--flagfile', 'presets/quickstart.flags', '--ngf=8']) == \
        ['--flagfile', preset, '--ngf=8']
    assert cli.resolve_flagfiles(['-flagfile=presets/quickstart.flags']) == \
        [f'-flagfile={preset}']
    assert cli.resolve_flagfiles(['--flagfile=presets/mine.flags', '--flagfile']) == \
        ['--flagfile=presets/mine.flags', '--flagfile']
    (tmp_path / 'presets').mkdir()
    (tmp_path / 'presets' / 'quickstart.flags').write_text('--ngf=8\n')
    assert cli.resolve_flagfiles(['--flagfile=presets/quickstart.flags']) == \
        ['--flagfile=presets/quickstart.flags']


def test_isort_knows_every_module_as_ours():
    """setup.cfg lists no modules: isort finds them in src_paths, setuptools by globbing."""
    settings = isort.Config(settings_path=str(ROOT))
    assert {name: isort.place_module(name, config=settings) for name in MODULES} == \
        {name: 'FIRSTPARTY' for name in MODULES}
