"""Run folders: what train.py writes and sample.py reads, and their checks.

::

    <runs_dir>/<name>/
        config.json                 the effective config (Config.save), read back on resume
        checkpoints/checkpoint      tf.train.Saver's state: the latest checkpoints
        checkpoints/model.ckpt-<step>.index, .data-00000-of-00001
        checkpoints/model.ckpt-<step>.host.npz   state kept outside the graph
                                    (the image pools, the loop's position)
        events.out.tfevents.*       TensorBoard: graph, scalars, sample grids, traces
        samples/step_<step>.png     the sample grids, as in TensorBoard
        test_<step>/                sample.py's images, index.html and grid.png
        imported.json               only in runs made by import_torch.py: the source of
                                    the weights and the networks imported (imported_networks)

Every file is written atomically (a temporary file renamed into place), and
the host state of a step is written before its checkpoint, so a process
killed at any moment leaves the latest checkpoint complete and loadable.

This module imports no TensorFlow: train.py and sample.py check the command
line and the run folder with it, in a fraction of a second, before paying
TensorFlow's import.
"""

import glob
import json
import os
import re
import tempfile

import numpy as np

import config

CONFIG_FILE = 'config.json'
IMPORTED_FILE = 'imported.json'  # written by import_torch.py: where the weights came from
CHECKPOINTS = 'checkpoints'
SAMPLES = 'samples'
PREFIX = 'model.ckpt'  # checkpoint files are <run>/checkpoints/model.ckpt-<step>.*
HOST_SUFFIX = '.host.npz'

# The settings that shape the variables (or what the networks compute): they
# cannot change when a run resumes. Names absent from a model's config are
# ignored. A checkpoint is also checked variable by variable when restored.
ARCHITECTURE = ('model', 'netG', 'netD', 'n_layers_D', 'ngf', 'ndf', 'norm', 'input_nc',
                'output_nc', 'no_dropout', 'noise_dim', 'hidden_units', 'hidden_layers')


class RunError(Exception):
    """A run folder that cannot be used as asked; the message is one line."""


def one_line(error):
    """The first line of an exception's message, whitespace collapsed."""
    text = (getattr(error, 'message', None) or str(error)).strip()
    return ' '.join(text.splitlines()[0].split()) if text else type(error).__name__


def checkpoint_dir(run_dir):
    return os.path.join(run_dir, CHECKPOINTS)


def load_config(run_dir):
    """The config saved in ``run_dir``; RunError if there is none or it is unreadable."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isdir(run_dir):
        raise RunError(f'no run at {run_dir}')
    if not os.path.isfile(path):
        raise RunError(f'{run_dir} is not a run of train.py (it has no {CONFIG_FILE})')
    try:
        return config.load(path)
    except config.ConfigError as e:
        raise RunError(str(e)) from None


def resolve(cfg, given):
    """The config to train ``cfg.run_dir`` with, and what changed.

    A new run (no folder, or an empty one) trains with ``cfg``. An existing
    run resumes with its saved config, updated with the settings ``given``
    on the command line (names), except those of ARCHITECTURE, which must
    equal the saved ones: re-running the same command resumes, adding
    ``--max_steps 5000`` trains longer, ``--ngf 32`` is an error.

    Returns (config, changes): changes maps each updated name to (saved, new).
    Raises RunError for a folder not made by train.py or an architecture change.
    """
    run_dir = cfg.run_dir
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f'{run_dir} is a file, not a run folder: choose another --name or '
                       f'--runs_dir')
    if not os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        if os.path.isdir(run_dir) and os.listdir(run_dir):
            raise RunError(f'{run_dir} exists and is not a run of train.py (it has no '
                           f'{CONFIG_FILE}): choose another --name or --runs_dir')
        return cfg, {}
    saved = load_config(run_dir)
    conflicts = [name for name in ARCHITECTURE if name in given
                 and getattr(saved, name, None) != getattr(cfg, name)]
    if conflicts:
        was = ' '.join(f'--{n}={getattr(saved, n, None)}' for n in conflicts)
        now = ' '.join(f'--{n}={getattr(cfg, n)}' for n in conflicts)
        raise RunError(f'{run_dir} was trained with {was}, this command asks for {now}: '
                       f'drop those flags to resume it, or give a new --name')
    updates = {name: getattr(cfg, name) for name in set(given) | {'name', 'runs_dir'}}
    try:
        merged = saved.replace(**updates)
    except config.ConfigError as e:
        raise RunError(f'cannot resume {run_dir} ({saved.model}) with this command: {e}') \
            from None
    changes = {name: (getattr(saved, name), value) for name, value in updates.items()
               if getattr(saved, name) != value and name not in ('name', 'runs_dir')}
    return merged, changes


def latest_run(runs_dir):
    """The run folder under ``runs_dir`` whose checkpoints changed last, or None."""
    states = glob.glob(os.path.join(runs_dir, '*', CHECKPOINTS, 'checkpoint'))
    if not states:
        return None
    return os.path.dirname(os.path.dirname(max(states, key=os.path.getmtime)))


def locate(run='', checkpoint='', runs_dir='./runs'):
    """(run folder, checkpoint prefix or None for the latest) for sample.py.

    ``checkpoint`` is a checkpoint prefix such as
    runs/x/checkpoints/model.ckpt-100 (its run is the folder above
    checkpoints/); else ``run`` is a run folder; else the latest run in
    ``runs_dir``. Raises RunError when there is no such run or checkpoint.
    """
    if checkpoint:
        if not os.path.isfile(checkpoint + '.index'):
            raise RunError(f'no checkpoint {checkpoint} (give the common prefix of its files, '
                           f'e.g. runs/<name>/{CHECKPOINTS}/{PREFIX}-1000)')
        run = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
        load_config(run)
        return run, checkpoint
    if not run:
        run = latest_run(runs_dir)
        if run is None:
            raise RunError(f'no trained run in {runs_dir}: train one with train.py, or give '
                           f'--run or --checkpoint')
    load_config(run)
    if not os.path.isfile(os.path.join(checkpoint_dir(run), 'checkpoint')):
        raise RunError(f'{run} has no checkpoint yet: train it first (python train.py ...)')
    return run, None


def imported_networks(run_dir):
    """The networks import_torch.py imported into ``run_dir`` (e.g. ['G_A']),
    or None for a run that was not imported (all its networks were trained
    here). As imported (step 0) the others hold their random initialization:
    a generator not listed translates nothing meaningful until train.py has
    trained the run further."""
    path = os.path.join(run_dir, IMPORTED_FILE)
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RunError(f'cannot read {path} ({one_line(e)})') from None
    networks = record.get('networks') if isinstance(record, dict) else None
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise RunError(f'{path} lists no imported networks')
    return networks


def step_of(prefix):
    """The step of a checkpoint prefix '.../model.ckpt-<step>', or None."""
    match = re.search(r'-(\d+)$', prefix)
    return int(match.group(1)) if match else None


def mismatch(saved_shapes, shapes):
    """Why a checkpoint with variables ``saved_shapes`` (name -> shape) cannot
    restore variables ``shapes``, in a few words, or None if it can."""
    missing = sorted(set(shapes) - set(saved_shapes))
    if missing:
        more = f' and {len(missing) - 1} more' if len(missing) > 1 else ''
        return f'it has no variable {missing[0]}{more}'
    for name in sorted(shapes):
        if list(saved_shapes[name]) != list(shapes[name]):
            return (f'its {name} has shape {list(saved_shapes[name])}, this model\'s '
                    f'{list(shapes[name])}')
    return None


# ---------------------------------------------------------------- host state


def save_host_state(prefix, state):
    """Writes ``state`` (name -> numpy array) as ``<prefix>.host.npz``, atomically."""
    path = prefix + HOST_SUFFIX
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                               prefix='.host-', suffix='.npz')
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the run unreadable to others
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **state)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_host_state(prefix):
    """The state saved with checkpoint ``prefix``, or None if there is none."""
    try:
        with np.load(prefix + HOST_SUFFIX) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        return None


def remove_stale_host_states(prefixes, directory):
    """Deletes host-state files in ``directory`` of checkpoints not in
    ``prefixes`` (the Saver deletes old checkpoints, not these files)."""
    keep = {os.path.basename(p) + HOST_SUFFIX for p in prefixes}
    for path in glob.glob(os.path.join(directory, PREFIX + '-*' + HOST_SUFFIX)):
        if os.path.basename(path) not in keep:
            os.remove(path)
