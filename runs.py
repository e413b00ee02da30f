"""Run folders: what train.py writes and sample.py reads, and their checks.

::

    <runs_dir>/<name>/
        config.json                 the effective config (Config.save), read back on resume
        checkpoints/checkpoint      tf.train.Saver's state: the latest checkpoints
        checkpoints/model.ckpt-<step>.index, .data-00000-of-00001
        checkpoints/model.ckpt-<step>.host.npz   state kept outside the graph
                                    (the image pools, the loop's position)
        checkpoints/epoch_<N>/model.ckpt-<step>.*   the snapshot after epoch N
                                    (--save_epoch_freq), kept for good
        checkpoints/best/model.ckpt-<step>.*, checkpoints/best.json
                                    the best checkpoint by FID (--eval_freq)
                                    (both outside the rotation of --keep_checkpoints)
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
import shutil
import time

import numpy as np

import config
import fileio
import registry

CONFIG_FILE = 'config.json'
IMPORTED_FILE = 'imported.json'  # written by import_torch.py: where the weights came from
CHECKPOINTS = 'checkpoints'
SAMPLES = 'samples'
PREFIX = 'model.ckpt'  # checkpoint files are <run>/checkpoints/model.ckpt-<step>.*
HOST_SUFFIX = '.host.npz'


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
    on the command line (names), except the model's architecture options
    (registry.Spec.architecture), which must equal the saved ones: re-running
    the same command resumes, adding ``--max_steps 5000`` trains longer,
    ``--ngf 32`` is an error.

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
    # A checkpoint is also checked variable by variable when it is restored.
    conflicts = [name for name in registry.of(saved).architecture if name in given
                 and getattr(saved, name) != getattr(cfg, name, None)]
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


def move_aside(run_dir):
    """Renames the run folder ``run_dir`` to <run_dir>.restarted-<time>
    (train.py --restart); returns the new name. Nothing is deleted."""
    stamp = time.strftime('%Y%m%d-%H%M%S')
    target = f'{os.path.normpath(run_dir)}.restarted-{stamp}'
    suffix = 1
    while os.path.exists(target):
        suffix += 1
        target = f'{os.path.normpath(run_dir)}.restarted-{stamp}-{suffix}'
    os.rename(run_dir, target)
    return target


def latest_run(runs_dir):
    """The run folder under ``runs_dir`` whose checkpoints changed last, or None."""
    states = glob.glob(os.path.join(runs_dir, '*', CHECKPOINTS, 'checkpoint'))
    if not states:
        return None
    return os.path.dirname(os.path.dirname(max(states, key=os.path.getmtime)))


def locate(run='', checkpoint='', runs_dir='./runs', *, best=False, epoch='latest',
           load_iter=0):
    """(run folder, checkpoint prefix or None for the latest) for sample.py.

    ``checkpoint`` is a checkpoint prefix such as
    runs/x/checkpoints/model.ckpt-100 (its run is the folder above
    checkpoints/); else ``run`` is a run folder; else the latest run in
    ``runs_dir``. Of that run, ``best`` picks the best checkpoint, ``epoch``
    (a number) the snapshot after that epoch, ``load_iter`` the checkpoint
    of that iteration. Raises RunError when there is no such run or
    checkpoint.
    """
    epoch = str(epoch)
    if epoch != 'latest' and not epoch.isdigit():
        raise RunError(f"--epoch is 'latest' or a number, got {epoch!r}")
    chosen = [flag for flag, on in (('--checkpoint', checkpoint), ('--best', best),
                                    ('--epoch', epoch != 'latest'), ('--load_iter', load_iter))
              if on]
    if len(chosen) > 1:
        raise RunError(f'give one of {", ".join(chosen)}')
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
    if best:
        return run, best_checkpoint(run)
    if epoch != 'latest':
        return run, _one_checkpoint(run, os.path.join(checkpoint_dir(run), snapshot_folder(
            int(epoch)), f'{PREFIX}-*.index'), f'no snapshot of epoch {epoch} (train.py keeps '
            f'one every --save_epoch_freq epochs)')
    if load_iter:
        return run, _one_checkpoint(run, os.path.join(
            checkpoint_dir(run), '**', f'{PREFIX}-{load_iter}.index'),
            f'no checkpoint of iteration {load_iter}')
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


def trained_networks(run_dir, checkpoint):
    """The networks of ``checkpoint`` that hold trained weights: those
    imported, for an imported run's step-0 checkpoint; None (all) otherwise."""
    networks = imported_networks(run_dir)
    return networks if networks is not None and step_of(checkpoint) == 0 else None


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
    with fileio.atomic_write(prefix + HOST_SUFFIX) as f:
        np.savez(f, **state)


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


# ---------------------------------------------------------- best checkpoint

BEST = 'best'  # checkpoints/best/: a copy of the best checkpoint's files
BEST_FILE = 'best.json'  # checkpoints/best.json: its prefix and scores


def best_record(run_dir):
    """The record of the best checkpoint of ``run_dir`` (kept by train.py's
    --eval_freq): 'checkpoint' (relative to checkpoints/), 'step', 'scores';
    RunError if there is none."""
    path = os.path.join(checkpoint_dir(run_dir), BEST_FILE)
    try:
        with open(path) as f:
            record = json.load(f)
        str(record['checkpoint'])
        return record
    except FileNotFoundError:
        raise RunError(f'{run_dir} has no best checkpoint: train it with --eval_freq N, which '
                       f'keeps the checkpoint of the lowest FID') from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f'cannot read {path} ({one_line(e)})') from None


def best_checkpoint(run_dir):
    """The prefix of the best checkpoint of ``run_dir``, or RunError."""
    prefix = os.path.join(checkpoint_dir(run_dir), str(best_record(run_dir)['checkpoint']))
    if not os.path.isfile(prefix + '.index'):
        raise RunError(f'the best checkpoint {prefix} of {run_dir} is missing')
    return prefix


def keep_best(prefix, run_dir, scores):
    """Copies the checkpoint ``prefix`` into checkpoints/best/, replacing the
    previous best, and records it with ``scores`` in checkpoints/best.json,
    written last: a reader sees the old best or the new, whole."""
    folder = checkpoint_dir(run_dir)
    copy_checkpoint(prefix, os.path.join(folder, BEST))
    record = {'checkpoint': f'{BEST}/{os.path.basename(prefix)}', 'step': step_of(prefix),
              'scores': scores}
    with fileio.atomic_write(os.path.join(folder, BEST_FILE), 'w') as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return record


def snapshot_folder(epoch):
    """The folder, under checkpoints/, of the snapshot after ``epoch``."""
    return f'epoch_{epoch:04d}'


def copy_checkpoint(prefix, folder):
    """Makes ``folder`` hold a copy of the checkpoint ``prefix`` (its index,
    data and host-state files) and nothing else, replacing what it held:
    copied into a temporary folder, then swapped in."""
    staging = fileio.make_temp_dir(os.path.dirname(os.path.abspath(folder)),
                                   os.path.basename(folder))
    try:
        for path in glob.glob(glob.escape(prefix) + '.*'):
            if path.endswith(('.index', HOST_SUFFIX)) or '.data-' in path:
                shutil.copy2(path, staging)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return os.path.join(folder, os.path.basename(prefix))


def _one_checkpoint(run, pattern, missing):
    """The checkpoint prefix whose index matches ``pattern`` (the newest), or RunError."""
    found = sorted(glob.glob(pattern, recursive=True), key=lambda p: step_of(p[:-6]) or 0)
    if not found:
        raise RunError(f'{run}: {missing}')
    return found[-1][:-len('.index')]
