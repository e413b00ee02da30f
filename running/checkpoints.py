"""Checkpoints: saving them whole, restoring the newest complete one, and
the checks that keep a diverged model from being saved.

This module imports TensorFlow only inside its functions.
"""

import logging
import os

from cyclegan_tf.running import runs

# Divergence: a loss above MAX_LOSS or a weight above MAX_WEIGHT in absolute
# value stops training as a NaN does (exit 1, nothing saved), so a blown-up
# model never rotates the good checkpoints out. Far beyond healthy values
# (losses of about 0.01-10 with their lambdas, a WGAN critic's of 1e1-1e3;
# weights of about 0.01-10 from an N(0, 0.02) or Xavier start) and far below
# float32's overflow. Constants, not options: no run needs others.
MAX_LOSS = 1e6
MAX_WEIGHT = 1e4


# The collection of variables a checkpoint may lack (--amp's loss scales):
# a checkpoint saved without them restores the others (PartialRestore).
OPTIONAL_VARIABLES = 'optional_variables'


logger = logging.getLogger(__name__)


def restore_checkpoint(sess, saver, variables, path, *, partial=None):
    """Restores ``path`` with ``saver`` (of ``variables``), first checking
    that it holds each of them with its shape; with ``partial``
    (PartialRestore), a checkpoint lacking the optional variables restores
    the others and initializes those. Raises runs.CheckpointError for an
    incomplete or unreadable checkpoint, RunError for one of another
    architecture."""
    import tensorflow as tf

    missing = runs.missing_data(path) if os.path.isfile(path + '.index') else None
    if missing:
        raise runs.CheckpointError(f'checkpoint {path} is incomplete ({missing})')
    try:
        saved = tf.compat.v1.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise runs.CheckpointError(f'cannot read checkpoint {path} ({runs.one_line(e)})') \
            from None
    lacking = partial.names - set(saved) if partial else set()
    why = runs.mismatch(saved, {v.op.name: v.shape.as_list() for v in variables
                                if v.op.name not in lacking})
    if why:
        raise runs.RunError(f'{path} is a checkpoint of another architecture: {why}')
    try:
        if lacking:
            partial.saver.restore(sess, path)
            sess.run(partial.initialize)
        else:
            saver.restore(sess, path)
    except tf.errors.OpError as e:  # e.g. its data file is missing or truncated
        raise runs.CheckpointError(restore_failure(path, e)) from None


def unreadable_variable(path):
    """(name, why) of the first variable of checkpoint ``path`` whose value
    cannot be read (a truncated or corrupt data file), or None when all
    read. Reads the values one at a time: a checkpoint's size of work,
    done only when a restore failed or to find one that loads."""
    import tensorflow as tf

    try:
        reader = tf.compat.v1.train.load_checkpoint(path)
        names = sorted(reader.get_variable_to_shape_map())
    except (tf.errors.OpError, ValueError) as e:
        return '(the index)', runs.one_line(e)
    for name in names:
        try:
            reader.get_tensor(name)
        except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as e:
            return name, runs.one_line(e)  # the reader raises IndexError for a short file
    return None


def restore_failure(path, error):
    """The one-line message of a restore of ``path`` that failed with
    ``error``: which data file and variable cannot be read, and which older
    checkpoint in its folder loads."""
    bad = unreadable_variable(path)
    if bad is None:  # the values read: something else failed
        return f'cannot restore checkpoint {path} ({runs.one_line(error)})'
    name, why = bad
    data = [os.path.basename(f) for f in runs.checkpoint_files(path) if '.data-' in f]
    data = f'its data file {data[0]}' if len(data) == 1 else 'its data files'
    folder = os.path.dirname(path)
    step = runs.step_of(path)
    older = [p for p in complete_checkpoints(folder)[0] if step is not None
             and runs.step_of(p) < step]
    good = next((p for p in reversed(older) if unreadable_variable(p) is None), None)
    where = (f'{os.path.basename(good)} loads (--checkpoint {good})' if good else
             f'no older checkpoint in {folder} loads')
    return (f'cannot restore checkpoint {path}: {data} is damaged: variable {name} cannot be '
            f'read ({why}); {where}')


class PartialRestore:
    """How a checkpoint saved without the graph's optional variables
    (collection OPTIONAL_VARIABLES: the loss scales of a run resumed with
    --amp) is restored: ``saver``, a Saver of all the other variables, then
    ``initialize``, the optional ones' initializer. :meth:`of_graph` builds
    it in the default graph before it is finalized, or returns None when
    the graph has no optional variables."""

    def __init__(self, names, saver, initialize):
        self.names, self.saver, self.initialize = names, saver, initialize

    @classmethod
    def of_graph(cls):
        import tensorflow as tf

        tf1 = tf.compat.v1
        optional = tf1.get_collection(OPTIONAL_VARIABLES)
        if not optional:
            return None
        names = {v.op.name for v in optional}
        with tf.name_scope('partial_restore/'):
            saver = tf1.train.Saver([v for v in tf1.global_variables()
                                     if v.op.name not in names], save_relative_paths=True)
            return cls(names, saver, tf1.variables_initializer(optional))


def complete_checkpoints(directory):
    """The checkpoints in ``directory`` as (complete, incomplete): the
    prefixes whose index reads and whose data files are all there, by step,
    and [(prefix, why not)] for the others with an index. (Complete is
    checked by the files, not by reading every value: a restore reads them.)"""
    import tensorflow as tf

    complete, incomplete = [], []
    for prefix in runs.checkpoint_prefixes(directory):
        why = runs.missing_data(prefix)
        if why is None:
            try:
                tf.compat.v1.train.load_checkpoint(prefix)
            except (tf.errors.OpError, ValueError) as e:
                why = f'its index is unreadable: {runs.one_line(e)}'
        if why is None:
            complete.append(prefix)
        else:
            incomplete.append((prefix, why))
    return complete, incomplete


def named_checkpoint(directory):
    """(the checkpoint checkpoints/checkpoint names, or None; why none, or None)."""
    import tensorflow as tf

    if not os.path.exists(os.path.join(directory, runs.STATE_FILE)):
        return None, 'missing'
    state = tf.compat.v1.train.get_checkpoint_state(directory)
    if state is None or not state.model_checkpoint_path:
        return None, 'unreadable'
    return os.path.join(directory, os.path.basename(state.model_checkpoint_path)), None


def choice_notes(directory, chosen, skipped):
    """Why ``chosen`` (a checkpoint prefix, or None for none) is the one to
    use from ``directory``, where checkpoints/checkpoint may say otherwise:
    a list of lines (empty when it names ``chosen`` and nothing was skipped).
    ``skipped``: [(prefix, why)], newer checkpoints that cannot be used."""
    named, why_not = named_checkpoint(directory)
    state = f'{runs.CHECKPOINTS}/{runs.STATE_FILE}'
    name = os.path.basename
    using = f'resuming from {name(chosen)}' if chosen else 'training from step 0'
    notes = [f'{name(p)} is incomplete or unreadable ({why}); skipped' for p, why in skipped
             if p != named]
    reasons = dict(skipped)
    if chosen and named == chosen:
        pass
    elif named is None and (chosen or why_not != 'missing'):
        notes.append(f'{state} is {why_not}: {using}'
                     + (', the newest complete checkpoint on disk' if chosen else ''))
    elif named in reasons:
        notes.append(f'{name(named)} is incomplete or unreadable ({reasons[named]}): {using}')
    elif named is not None and not os.path.exists(named + '.index'):
        notes.append(f'{state} names {name(named)}, which is missing: {using}')
    elif named is not None and chosen:
        notes.append(f'{state} names {name(named)}, but {name(chosen)} is newer and complete: '
                     f'resuming from it')
    return notes


def newest_checkpoint(directory):
    """The newest complete checkpoint in ``directory``, with a warning for
    each newer one that is incomplete, or where checkpoints/checkpoint names
    another; None when there is no checkpoint; CheckpointError when there
    are checkpoints and none is complete."""
    complete, incomplete = complete_checkpoints(directory)
    if not complete:
        if incomplete:
            raise runs.CheckpointError(no_complete_message(directory, incomplete))
        return None
    chosen = complete[-1]
    newer = [(p, why) for p, why in incomplete if runs.step_of(p) > runs.step_of(chosen)]
    for note in choice_notes(directory, chosen, newer):
        logger.warning('warning: %s', note)
    return chosen


def no_complete_message(directory, unusable):
    """The error of a folder whose checkpoints ``unusable`` [(prefix, why)] all fail."""
    found = [f'{os.path.basename(p)} ({why})' for p, why in reversed(unusable)]
    more = f' and {len(found) - 2} more' if len(found) > 2 else ''
    return (f'no complete checkpoint in {directory}: ' + '; '.join(found[:2]) + more
            + '. Its files are left as they are')


class TrainingError(Exception):
    """Training cannot go on (a NaN, Inf or exploding loss or weight); the
    message is one line."""


def check_losses(step, losses, last):
    """Raises TrainingError if a loss of ``step`` (name -> float) is NaN or
    Inf, or above MAX_LOSS; ``last`` says which checkpoint is kept."""
    import math

    for name, value in losses.items():
        if not math.isfinite(value):
            raise TrainingError(f'step {step}: loss {name} is {value}; stopped without saving. '
                                f'{last}')
        if abs(value) > MAX_LOSS:
            raise TrainingError(f'step {step}: loss {name} is {value:.3g}, above {MAX_LOSS:g}: '
                                f'training diverged; stopped without saving. {last}')


class WeightCheck:
    """Ops in the current graph that check the weights before a save: every
    floating-point variable finite (optimizer slots too), every trainable
    one at most MAX_WEIGHT in absolute value. ``problem(sess)``: what is
    wrong, in a few words, or None."""

    def __init__(self, variables=None, trainable=None):
        import tensorflow as tf

        tf1 = tf.compat.v1
        variables = tf1.global_variables() if variables is None else variables
        self.trainable = tf1.trainable_variables() if trainable is None else trainable
        self.finite = tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(v)) for v in variables
             if v.dtype.base_dtype.is_floating], name='weights_finite')
        self.max_abs = tf.stack([tf.reduce_max(tf.abs(v)) for v in self.trainable],
                                name='max_abs_weights') if self.trainable else tf.zeros([0])

    def problem(self, sess):
        finite, max_abs = sess.run([self.finite, self.max_abs])
        if not finite:
            return 'the weights are not finite (NaN or Inf)'
        if len(max_abs) and max_abs.max() > MAX_WEIGHT:
            i = int(max_abs.argmax())
            return (f'weight {self.trainable[i].op.name} reaches {max_abs[i]:.3g} in absolute '
                    f'value, above {MAX_WEIGHT:g}: training diverged')
        return None


class Checkpoints:
    """Saves and restores the checkpoints of a run: the graph's variables
    (tf.train.Saver, which writes atomically) and, first, the state kept
    outside the graph (runs.save_host_state), so a checkpoint never points to
    missing state. A checkpoint is only written if the weights pass the
    WeightCheck: a diverged model never rotates the good ones out.

    A run resumes from its newest *complete* checkpoint on disk, whatever
    checkpoints/checkpoint names, saying why when that is another one; the
    Saver's rotation (--keep_checkpoints) learns the complete ones, so no
    older checkpoint is overwritten or deleted because of a wrong latest.
    Leftovers of saves killed midway are deleted first (runs.leftovers): the
    caller holds the run's RunLock. A save that fails (a full disk) removes
    what it wrote of its step and raises RunError: the previous checkpoint
    stays the latest, whole.
    """

    writes = True  # it writes checkpoints (distribute.WorkerCheckpoints does not)

    def __init__(self, cfg, saver, weights, *, partial=None):
        self.cfg, self.dir = cfg, runs.checkpoint_dir(cfg.run_dir)
        self.saver, self.weights, self.partial = saver, weights, partial
        self.last_step = None
        self.config_saved = False

    @staticmethod
    def check(run_dir):
        """Before the graph is built: CheckpointError if ``run_dir`` has
        checkpoints and none of them is complete (restore would raise it
        too, after the build's seconds or minutes)."""
        directory = runs.checkpoint_dir(run_dir)
        complete, incomplete = complete_checkpoints(directory)
        if incomplete and not complete:
            raise runs.CheckpointError(no_complete_message(directory, incomplete))

    def restore(self, sess, net, init_op, steps_per_epoch):
        """Restores the newest complete checkpoint, or initializes. Returns
        (step, epoch, epoch_start: the step the epoch began after, path or
        None, whether host state was loaded)."""
        import tensorflow as tf

        tf1 = tf.compat.v1
        removed = runs.remove_leftovers(self.dir)
        if removed:
            more = f' and {len(removed) - 2} more' if len(removed) > 2 else ''
            logger.warning('removed %d leftover file(s) of interrupted saves from %s: %s%s',
                           len(removed), self.dir, ', '.join(removed[:2]), more)
        complete, incomplete = complete_checkpoints(self.dir)
        path, failed = None, []
        for candidate in reversed(complete):
            try:
                restore_checkpoint(sess, self.saver, tf1.global_variables(), candidate,
                                   partial=self.partial)
            except runs.CheckpointError as e:
                failed.append((candidate, runs.one_line(e)))
                continue
            path = candidate
            break
        if path is None and (complete or incomplete):
            raise runs.CheckpointError(no_complete_message(self.dir, incomplete + failed))
        skipped = sorted(incomplete + failed, key=lambda item: runs.step_of(item[0]))
        for note in choice_notes(self.dir, path, skipped):
            logger.warning('warning: %s', note)
        if path is None:
            sess.run(init_op)
            return 0, 0, 0, None, False
        # The rotation deletes the oldest of these first; never a newer one.
        self.saver.recover_last_checkpoints(
            [p for p in complete if runs.step_of(p) <= runs.step_of(path)])
        step, epoch = (int(v) for v in sess.run([net.global_step, net.epoch]))
        self.last_step = step
        host = self._load_host_state(net, path)
        epoch_start = int(host.get('loop/epoch_start', min(step, epoch * steps_per_epoch)))
        return step, epoch, epoch_start, path, bool(host)

    def _load_host_state(self, net, path):
        """Loads the host state of checkpoint ``path`` into ``net``; returns
        it, or {} with a one-line notice when it is missing or unusable."""
        fresh = net.host_state()
        name = os.path.basename(path) + runs.HOST_SUFFIX
        try:
            host = runs.load_host_state(path)
            why = None if host is not None else f'{name} is missing'
        except runs.CheckpointError as e:
            host, why = None, str(e)
        if host is not None:
            try:
                net.load_host_state({k[len('model/'):]: v for k, v in host.items()
                                     if k.startswith('model/')})
            except (KeyError, ValueError, TypeError, IndexError) as e:
                net.load_host_state(fresh)
                host, why = None, f'{name} does not fit this model ({runs.one_line(e)})'
        if host is None:
            effect = 'the image pools start empty' if fresh else 'the epoch position is recomputed'
            logger.warning('%s: %s', why, effect)
            return {}
        return host

    def save(self, sess, net, step, epoch_start):
        """Saves at ``step`` unless already saved there; returns the path or None."""
        import tensorflow as tf

        if step == self.last_step:
            return None
        problem = self.weights.problem(sess)
        if problem:
            raise TrainingError(f'step {step}: {problem}; not saved. {self.describe_last()}')
        prefix = self.prefix(step)
        host = {f'model/{k}': v for k, v in net.host_state().items()}
        host['loop/epoch_start'] = epoch_start
        os.makedirs(self.dir, exist_ok=True)
        if not self.config_saved:  # the settings of this session, with its first checkpoint
            runs.save_config(self.cfg, os.path.join(self.cfg.run_dir, runs.CONFIG_FILE))
            self.config_saved = True
        try:
            runs.save_host_state(prefix, host)
            path = self.saver.save(sess, os.path.join(self.dir, runs.PREFIX), global_step=step,
                                   write_meta_graph=False)
        except (OSError, tf.errors.OpError) as e:  # e.g. the disk is full
            for leftover in runs.checkpoint_files(prefix):
                os.remove(leftover)
            raise runs.RunError(f'cannot save the checkpoint of step {step} '
                                f'({runs.one_line(e)}). {self.describe_last()}') from None
        runs.remove_stale_host_states(self.dir)
        self.last_step = step
        return path

    def prefix(self, step):
        """The path prefix of the checkpoint of ``step``."""
        return os.path.join(self.dir, f'{runs.PREFIX}-{step}')

    def describe_last(self):
        if self.last_step is None:
            return 'No checkpoint was saved.'
        return f'The last checkpoint, step {self.last_step}, is kept in {self.dir}.'
