"""What the scripts share at run time: TensorFlow's set-up and session
settings, restoring checkpoints, and the exit statuses of a command.

Scripts (train.py, sample.py, bench.py, ...) import this module and the
library modules; no script imports another. This module imports TensorFlow
only inside its functions: a script checks its command line and prints its
first line before paying TensorFlow's import.
"""

import os
import sys

import config
import datasets
import runs

# Errors of the user's making: one line on stderr, exit status 2.
USER_ERRORS = (config.ConfigError, datasets.DatasetError, runs.RunError)
HELP_FLAGS = ('-h', '-help', '--help', '--helpshort', '--helpfull')
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def quiet_tensorflow():
    """Before TensorFlow is imported: its C++ INFO/WARNING/ERROR lines, such
    as 'failed call to cuInit' on every machine without a GPU. Errors still
    come as Python exceptions; TF_CPP_MIN_LOG_LEVEL=0 shows everything.
    (Since TensorFlow 2.19 the few lines logged while it is imported escape
    this setting, tensorflow/tensorflow#100442.)"""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def select_gpus(gpu_ids):
    """--gpu_ids: the GPUs TensorFlow may use ('0,1'; '-1': none), set in
    CUDA_VISIBLE_DEVICES before TensorFlow is imported ('' leaves it as is)."""
    if not gpu_ids:
        return
    ids = [part.strip() for part in str(gpu_ids).split(',') if part.strip()]
    if not all(part.lstrip('-').isdigit() for part in ids):
        raise config.ConfigError(f'--gpu_ids is a list of GPU numbers such as 0,1 (-1: the '
                                 f'CPU), got {gpu_ids!r}')
    visible = ','.join(part for part in ids if int(part) >= 0)
    if 'tensorflow' in sys.modules and os.environ.get('CUDA_VISIBLE_DEVICES') != visible:
        import tensorflow as tf

        if tf.config.list_physical_devices('GPU') or visible:
            print(f'note: --gpu_ids {gpu_ids} cannot apply: TensorFlow is already loaded in '
                  f'this process', file=sys.stderr)
        return
    os.environ['CUDA_VISIBLE_DEVICES'] = visible


def graph_mode():
    """Imports TensorFlow for TF1 graph code: graph mode, no deprecation
    notices of the tf.compat.v1 API. Returns the tensorflow module."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    tf.get_logger().setLevel('ERROR')
    return tf


def session_config(*, training=True):
    """The session settings of training (``training``) and of inference."""
    import tensorflow as tf

    proto = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    proto.gpu_options.allow_growth = True
    if not tf.config.list_physical_devices('GPU'):
        # Grappler's graph rewrites take about 8 s before the first step of a
        # CycleGAN graph on a CPU and make its steps no faster (its remapper
        # even fails on it). On a GPU they stay on: there the layout optimizer
        # turns NHWC convolutions into cuDNN's faster NCHW.
        proto.graph_options.rewrite_options.disable_meta_optimizer = True
        if training:
            # Two ops at a time on half the cores each: a training step runs
            # two independent generator/discriminator branches, and small
            # convolutions scale badly over threads. On 2 cores (1 thread per
            # op) a CycleGAN step took 0.18-0.24 s instead of 0.31-0.37 s at
            # 64 px (ngf 32), 10.0 s instead of 11.5 s at 256 px (ngf 64).
            # Inference, one chain of ops, keeps TensorFlow's default.
            proto.inter_op_parallelism_threads = 2
            proto.intra_op_parallelism_threads = max(1, (os.cpu_count() or 2) // 2)
    return proto


def restore_checkpoint(sess, saver, variables, path):
    """Restores ``path`` with ``saver`` (of ``variables``), first checking
    that it holds each of them with its shape (else RunError: a checkpoint
    of another architecture, or an unreadable one)."""
    import tensorflow as tf

    try:
        saved = tf.compat.v1.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise runs.RunError(f'cannot read checkpoint {path} ({runs.one_line(e)})') from None
    why = runs.mismatch(saved, {v.op.name: v.shape.as_list() for v in variables})
    if why:
        raise runs.RunError(f'{path} is a checkpoint of another architecture: {why}')
    try:
        saver.restore(sess, path)
    except tf.errors.OpError as e:  # e.g. its data file is missing or truncated
        raise runs.RunError(f'cannot restore checkpoint {path} ({runs.one_line(e)})') from None


def print_help(doc, settings):
    """A tool's --help: its docstring ``doc``, then the flags of its Settings class."""
    print(doc)
    print(config.help_text(settings=settings))
    return EXIT_OK


def wants_help(argv):
    """Whether the command line ``argv`` asks for help."""
    return any(arg in HELP_FLAGS for arg in argv[1:])


def run_command(program, body, argv):
    """Runs ``body(argv)`` as the command ``program``; returns its exit status.

    The statuses of every script: what ``body`` returns (0 done); 2 and one
    line on stderr for an error of the user's making (USER_ERRORS, or an
    OSError such as a folder that cannot be written); 130 for Ctrl-C before
    the body handles it itself.
    """
    try:
        return body(argv)
    except USER_ERRORS + (OSError,) as e:
        print(f'{program}: error: {runs.one_line(e)}', file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f'{program}: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED


class TrainingError(Exception):
    """Training cannot go on (a NaN or Inf loss or weight); the message is one line."""


class Checkpoints:
    """Saves and restores the checkpoints of a run: the graph's variables
    (tf.train.Saver, which writes atomically) and, first, the state kept
    outside the graph (runs.save_host_state), so a checkpoint never points to
    missing state. A checkpoint is only written if every variable is finite."""

    def __init__(self, cfg, saver, weights_finite):
        self.cfg, self.dir = cfg, runs.checkpoint_dir(cfg.run_dir)
        self.saver, self.weights_finite = saver, weights_finite
        self.last_step = None
        self.config_saved = False

    def restore(self, sess, net, init_op, steps_per_epoch):
        """Restores the latest checkpoint, or initializes. Returns (step,
        epoch, epoch_start: the step the epoch began after, path or None,
        whether host state was found)."""
        import tensorflow as tf

        tf1 = tf.compat.v1
        path = tf1.train.latest_checkpoint(self.dir)
        if path is None:
            sess.run(init_op)
            return 0, 0, 0, None, False
        restore_checkpoint(sess, self.saver, tf1.global_variables(), path)
        self.saver.recover_last_checkpoints(
            tf1.train.get_checkpoint_state(self.dir).all_model_checkpoint_paths)
        step, epoch = (int(v) for v in sess.run([net.global_step, net.epoch]))
        self.last_step = step
        host = runs.load_host_state(path) or {}
        net.load_host_state({k[len('model/'):]: v for k, v in host.items()
                             if k.startswith('model/')})
        epoch_start = int(host.get('loop/epoch_start', min(step, epoch * steps_per_epoch)))
        return step, epoch, epoch_start, path, bool(host)

    def save(self, sess, net, step, epoch_start):
        """Saves at ``step`` unless already saved there; returns the path or None."""
        if step == self.last_step:
            return None
        if not sess.run(self.weights_finite):
            raise TrainingError(f'step {step}: the weights are not finite (NaN or Inf); not '
                                f'saved. {self.describe_last()}')
        prefix = os.path.join(self.dir, f'{runs.PREFIX}-{step}')
        host = {f'model/{k}': v for k, v in net.host_state().items()}
        host['loop/epoch_start'] = epoch_start
        os.makedirs(self.dir, exist_ok=True)
        if not self.config_saved:  # the settings of this session, with its first checkpoint
            self.cfg.save(os.path.join(self.cfg.run_dir, runs.CONFIG_FILE))
            self.config_saved = True
        runs.save_host_state(prefix, host)
        path = self.saver.save(sess, os.path.join(self.dir, runs.PREFIX), global_step=step,
                               write_meta_graph=False)
        runs.remove_stale_host_states(self.saver.last_checkpoints, self.dir)
        self.last_step = step
        return path

    def describe_last(self):
        if self.last_step is None:
            return 'No checkpoint was saved.'
        return f'The last checkpoint, step {self.last_step}, is kept in {self.dir}.'
