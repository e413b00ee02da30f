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
        .lock                       held by the train.py training it (RunLock)
        events.out.tfevents.*       TensorBoard: graph, scalars, sample grids, traces
        samples/step_<step>.png     the sample grids, as in TensorBoard
        test_<step>/                sample.py's images, index.html and grid.png
        imported.json               only in runs made by import_torch.py: the source of
                                    the weights and the networks imported (imported_networks)

Every file is written atomically (a temporary file renamed into place), and
the host state of a step is written before its checkpoint, so a process
killed at any moment leaves the latest checkpoint complete and loadable.
What such a kill leaves half-written (:func:`leftovers`) is removed when
training resumes, and a run resumes from its newest *complete* checkpoint,
whatever checkpoints/checkpoint says (runtime.Checkpoints).

This module imports no TensorFlow: train.py and sample.py check the command
line and the run folder with it, in a fraction of a second, before paying
TensorFlow's import.
"""

import errno
import fcntl
import glob
import json
import os
import re
import shutil
import socket
import time

import numpy as np

from cyclegan_tf import config, registry
from cyclegan_tf.running import fileio

CONFIG_FILE = 'config.json'
IMPORTED_FILE = 'imported.json'  # written by import_torch.py: where the weights came from
CHECKPOINTS = 'checkpoints'
SAMPLES = 'samples'
PREFIX = 'model.ckpt'  # checkpoint files are <run>/checkpoints/model.ckpt-<step>.*
HOST_SUFFIX = '.host.npz'
LOCK_FILE = '.lock'
STATE_FILE = 'checkpoint'  # tf.train.Saver's list of the latest checkpoints


class RunError(Exception):
    """A run folder that cannot be used as asked; the message is one line."""


class CheckpointError(RunError):
    """A checkpoint that cannot be read: incomplete (a file missing) or corrupt."""


def one_line(error):
    """The first line of an exception's message, whitespace collapsed."""
    text = (getattr(error, 'message', None) or str(error)).strip()
    return ' '.join(text.splitlines()[0].split()) if text else type(error).__name__


def checkpoint_dir(run_dir):
    return os.path.join(run_dir, CHECKPOINTS)


def save_config(cfg, path):
    """Writes ``cfg`` as JSON, atomically: a reader sees old or new, never half."""
    with fileio.atomic_write(path, 'w') as f:
        json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
        f.write('\n')


def read_config(path):
    """Reads a config saved by :func:`save_config`; its class is the config
    class of its 'model' (registry.py). ConfigError if it cannot."""
    try:
        with open(path) as f:
            values = json.load(f)
    except FileNotFoundError:
        raise config.ConfigError(f'no config at {path}') from None
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise config.ConfigError(f'cannot read config {path}: {e}') from None
    if not isinstance(values, dict) or 'model' not in values:
        raise config.ConfigError(f'{path} is not a config saved by this project')
    if not isinstance(values['model'], str):
        raise config.ConfigError(f'{path}: model must be a string, got {values["model"]!r}')
    return registry.get(values['model']).config(**values)


def load_config(run_dir):
    """The config saved in ``run_dir``; RunError if there is none or it is unreadable."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isdir(run_dir):
        raise RunError(f'no run at {run_dir}')
    if not os.path.isfile(path):
        raise RunError(f'{run_dir} is not a run of train.py (it has no {CONFIG_FILE})')
    try:
        return read_config(path)
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
        if os.path.isdir(run_dir) and set(os.listdir(run_dir)) - {LOCK_FILE}:
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
    states = glob.glob(os.path.join(glob.escape(runs_dir), '*', CHECKPOINTS, '*.index'))
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
    if not checkpoint_prefixes(checkpoint_dir(run)):
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
    """The state saved with checkpoint ``prefix``, or None if there is none;
    CheckpointError if its file is unreadable (truncated, not an .npz)."""
    path = prefix + HOST_SUFFIX
    try:
        with np.load(path) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        return None
    except Exception as e:  # numpy and zipfile raise many kinds
        raise CheckpointError(f'{path} is unreadable ({one_line(e)})') from None


def remove_stale_host_states(directory):
    """Deletes the host-state files in ``directory`` whose checkpoint has no
    index (the Saver deleted it, or it was never completed). Whatever the
    Saver keeps keeps its host state, with --keep_checkpoints 0 every one."""
    for path in glob.glob(os.path.join(glob.escape(directory), PREFIX + '-*' + HOST_SUFFIX)):
        if not os.path.exists(path[:-len(HOST_SUFFIX)] + '.index'):
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


# ---------------------------------------------------------------- checkpoint files

_INDEX = re.compile(re.escape(PREFIX) + r'-(\d+)\.index$')
_DATA = re.compile(re.escape(PREFIX) + r'-(\d+)\.data-(\d+)-of-(\d+)$')
_STEP_FILE = re.compile(re.escape(PREFIX) + r'-(\d+)\.')


def checkpoint_prefixes(directory):
    """The prefixes of the checkpoints in ``directory`` that have an index
    file, complete or not, in the order of their steps."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    steps = sorted(int(m.group(1)) for m in map(_INDEX.match, names) if m)
    return [os.path.join(directory, f'{PREFIX}-{step}') for step in steps]


def missing_data(prefix):
    """Why the data files of checkpoint ``prefix`` (its index present) are
    incomplete, in a few words, or None if every shard is there."""
    folder, base = os.path.split(prefix)
    shards = [m for m in map(_DATA.match, os.listdir(folder or '.'))
              if m and f'{PREFIX}-{m.group(1)}' == base]
    if not shards:
        return f'its data file {base}.data-00000-of-00001 is missing'
    count = int(shards[0].group(3))
    present = {int(m.group(2)) for m in shards}
    lost = [i for i in range(count) if i not in present]
    if lost:
        return f'its data file {base}.data-{lost[0]:05d}-of-{count:05d} is missing'
    return None


def leftovers(directory):
    """The files in the checkpoints folder ``directory`` that a save killed
    midway leaves and nothing reads: data files of a step without an index
    (the Saver writes the index last), temporary files of the Saver
    (``*.tempstate*``, ``checkpoint.tmp*``) and of save_host_state
    (``.host-*.npz``), and host states of a step without an index (written
    just before its checkpoint). Sorted names; nothing else matches."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    indexed = {m.group(1) for m in map(_INDEX.match, names) if m}
    found = []
    for name in names:
        step = _STEP_FILE.match(name)
        if ('.tempstate' in name and name.startswith(PREFIX + '-')
                or name.startswith(STATE_FILE + '.tmp')
                or name.startswith('.host-') and name.endswith('.npz')
                or step and step.group(1) not in indexed
                and (_DATA.match(name) or name.endswith(HOST_SUFFIX))):
            if os.path.isfile(os.path.join(directory, name)):
                found.append(name)
    return sorted(found)


def remove_leftovers(directory):
    """Deletes :func:`leftovers`; returns their names. Only while no
    process saves into ``directory`` (train.py holds the RunLock)."""
    found = leftovers(directory)
    for name in found:
        os.remove(os.path.join(directory, name))
    return found


def checkpoint_files(prefix):
    """Every file of the checkpoint ``prefix`` (its step's files), complete or not."""
    folder, base = os.path.split(prefix)
    try:
        names = os.listdir(folder or '.')
    except FileNotFoundError:
        return []
    return sorted(os.path.join(folder, name) for name in names
                  if name.startswith(base + '.') and _STEP_FILE.match(name))


# ---------------------------------------------------------------- the run lock


class RunLock:
    """The lock of a run folder, held while a process trains it: a second
    train.py on the same folder gets a RunError naming the first.

    ``fcntl.flock`` on <run>/.lock: the kernel releases it when the process
    ends in any way (a crash, kill -9), so a lock is never stale; the file
    itself stays, holding the pid and host of its last holder for that
    message. A folder this lock created and nothing else wrote into is
    removed again on release. Where the file system has no locks (some
    network file systems) training goes on unlocked, with a warning.
    """

    def __init__(self, run_dir, program='train.py'):
        self.run_dir, self.program = run_dir, program
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.fd = None

    def __enter__(self):
        self.created = not os.path.isdir(self.run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 1000).decode('utf-8', 'replace').strip()
                os.close(fd)
                raise RunError(f'{self.run_dir} is in use by {holder or "another process"}: '
                               f'wait for it to end or stop it (one process trains a run '
                               f'at a time)') from None
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                import logging

                logging.getLogger(__name__).warning(
                    'warning: cannot lock %s (%s): make sure no other process trains it',
                    self.run_dir, e.strerror)
                return self
            # Locked: unless the file was removed and made anew meanwhile
            # (another process releasing a folder it created), it is ours.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        holder = (f'{self.program} (pid {os.getpid()} on {socket.gethostname()}, since '
                  f'{time.strftime("%Y-%m-%d %H:%M:%S")})')
        os.ftruncate(fd, 0)
        os.write(fd, holder.encode() + b'\n')
        return self

    def __exit__(self, *exc_info):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
            if self.created and os.listdir(self.run_dir) == [LOCK_FILE]:
                os.remove(self.path)  # before unlocking: see the samestat check above
                os.rmdir(self.run_dir)
        except OSError:
            pass
        finally:
            os.close(self.fd)  # releases the lock
            self.fd = None


def writable_folder_problem(path):
    """Why files cannot be written into the folder ``path`` (made if missing),
    in one line, or None. Checks the folder or its nearest existing parent."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = 'is a file' if existing == os.path.abspath(path) else f'is under the file {existing}'
        return f'{path} {what}, not a folder'
    if not os.access(existing, os.W_OK | os.X_OK):
        return f'{existing} is not writable'
    return None
