"""Trains a model: ``python train.py --dataset horse2zebra`` (see README.md).

Every flag comes from config.py (``python train.py --help``); a preset is a
flag file (``--flagfile presets/quickstart.flags``). The run lives in
<runs_dir>/<name> (layout in runs.py). Running the same command again
resumes from the latest checkpoint: weights, optimizer slots, global step,
epoch (the learning-rate schedule) and the image pools.

Checkpoints are saved every --save_freq steps, at the end of each epoch and
at the end; Ctrl-C or SIGTERM saves at the current step and exits with 0.
A NaN or Inf loss stops training without saving.

Exit status: 0 trained, or stopped by a signal and saved; 1 training failed
(NaN or Inf); 2 a bad command line, dataset or run folder (one line on
stderr); 130 interrupted before the first step.
"""

import logging
import math
import os
import signal
import sys
import time

# Before TensorFlow is imported: its C++ INFO/WARNING/ERROR lines, such as
# 'failed call to cuInit' on every machine without a GPU. Errors still come
# as Python exceptions; TF_CPP_MIN_LOG_LEVEL=0 shows everything. Since
# TensorFlow 2.19 the few lines logged while it is imported (oneDNN, CUDA
# drivers) escape this setting (tensorflow/tensorflow#100442).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import tqdm  # noqa: E402
from absl import flags  # noqa: E402

import config  # noqa: E402
import datasets  # noqa: E402
import runs  # noqa: E402

USER_ERRORS = (config.ConfigError, datasets.DatasetError, runs.RunError)
HELP_FLAGS = ('-h', '-help', '--help', '--helpshort', '--helpfull')


class TrainingError(Exception):
    """Training cannot go on (a NaN or Inf loss); the message is one line."""


def parse(argv):
    """(config, changes) of the command line ``argv`` (argv[0]: the program).

    The config is the one to train the run folder with (see runs.resolve:
    an existing run keeps its saved settings unless given again); changes
    maps each setting that differs from the saved run to (saved, new).
    """
    flag_values = config.define_flags(flags.FlagValues())
    config.parse_argv(flag_values, argv)
    cfg = config.from_flags(flag_values)
    given = [name for name in cfg.options() if flag_values[name].present]
    return runs.resolve(cfg, given)


def session_config(*, training=True):
    """The session settings of train.py (``training``), sample.py and bench.py."""
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


def due(step, freq):
    """Whether a periodic action every ``freq`` steps (0: never) falls on ``step``."""
    return freq > 0 and step % freq == 0


def total_steps(cfg, steps_per_epoch):
    epochs = cfg.n_epochs + cfg.n_epochs_decay
    return min(cfg.max_steps, epochs * steps_per_epoch) if cfg.max_steps else \
        epochs * steps_per_epoch


class StopSignals:
    """Within this context SIGINT (Ctrl-C) and SIGTERM do not end the process:
    they set ``name`` (e.g. 'SIGINT'), and the loop saves and stops."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.name = None
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        self.name = signal.Signals(signum).name

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Progress:
    """Shows progress: a tqdm bar (iterations/s, ETA, losses) on a terminal,
    and every ``print_freq`` steps a log line that reads well in a file too:
    step, epoch, iterations/s, ETA, learning rate and the losses (moving
    averages over about 50 steps)."""

    def __init__(self, cfg, start, total, averager):
        self.cfg, self.total, self.averager = cfg, total, averager
        self.bar = tqdm.tqdm(total=total, initial=start, unit='it', dynamic_ncols=True,
                             disable=not sys.stdout.isatty(), file=sys.stdout, smoothing=0.05)
        self.rate_start = None  # (time, step) after the first step: it pays the warm-up

    def log(self, text):
        tqdm.tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()

    def update(self, step, losses, *, epoch, epochs, lr):
        averages = self.averager.update(losses)
        self.bar.update(1)
        d_loss = sum(v for k, v in averages.items() if k.startswith('D'))
        g_loss = sum(v for k, v in averages.items() if not k.startswith('D'))
        self.bar.set_postfix_str(f'G {g_loss:.3f} D {d_loss:.3f}', refresh=False)
        now = time.perf_counter()
        if self.rate_start is None:
            self.rate_start = (now, step)
        if due(step, self.cfg.print_freq) or step == 1:
            elapsed, steps = now - self.rate_start[0], step - self.rate_start[1]
            eta = _duration((self.total - step) * elapsed / steps) if steps else '?'
            rate = f'{steps / elapsed:.2f} it/s  eta {eta}' if steps else 'first step'
            values = '  '.join(f'{k} {v:.3f}' for k, v in averages.items())
            self.log(f'step {step}/{self.total}  epoch {epoch + 1}/{epochs}  {rate}  '
                     f'lr {lr:.2e}  {values}')

    def close(self):
        self.bar.close()


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    return f'{seconds // 60}m{seconds % 60:02d}s'


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
        """Restores the latest checkpoint, or initializes; returns the loop
        state: 'step', 'epoch' and 'epoch_start' (the step it began after)."""
        import tensorflow as tf

        tf1 = tf.compat.v1
        path = tf1.train.latest_checkpoint(self.dir)
        if path is None:
            sess.run(init_op)
            return {'step': 0, 'epoch': 0, 'epoch_start': 0}
        restore_checkpoint(sess, self.saver, tf1.global_variables(), path)
        self.saver.recover_last_checkpoints(
            tf1.train.get_checkpoint_state(self.dir).all_model_checkpoint_paths)
        step, epoch = (int(v) for v in sess.run([net.global_step, net.epoch]))
        self.last_step = step
        host = runs.load_host_state(path) or {}
        net.load_host_state({k[len('model/'):]: v for k, v in host.items()
                             if k.startswith('model/')})
        epoch_start = host.get('loop/epoch_start', min(step, epoch * steps_per_epoch))
        return {'step': step, 'epoch': epoch, 'epoch_start': int(epoch_start), 'path': path,
                'host_state': bool(host)}

    def save(self, sess, net, state):
        """Saves at ``state['step']`` unless already saved there; returns the path."""
        step = state['step']
        if step == self.last_step:
            return None
        if not sess.run(self.weights_finite):
            raise TrainingError(f'step {step}: the weights are not finite (NaN or Inf); not '
                                f'saved. {self.describe_last()}')
        prefix = os.path.join(self.dir, f'{runs.PREFIX}-{step}')
        host = {f'model/{k}': v for k, v in net.host_state().items()}
        host['loop/epoch_start'] = state['epoch_start']
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


def restore_checkpoint(sess, saver, variables, path):
    """Restores ``path`` with ``saver`` (of ``variables``), first checking
    that it holds each of them with its shape (else RunError: a checkpoint
    of another architecture)."""
    import tensorflow as tf

    try:
        saved = tf.compat.v1.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise runs.RunError(f'cannot read checkpoint {path} ({runs.one_line(e)})') from None
    why = runs.mismatch(saved, {v.op.name: v.shape.as_list() for v in variables})
    if why:
        raise runs.RunError(f'{path} is a checkpoint of another architecture: {why}')
    saver.restore(sess, path)


def train(cfg, changes, dataset_root):
    """Trains ``cfg`` in cfg.run_dir from its latest checkpoint; returns the exit status."""
    # Imported here, once the command line and the run folder checked out:
    # TensorFlow's import takes seconds and prints log lines.
    import tensorflow as tf

    import data
    import model as models
    import visuals

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()  # graph mode throughout, as TF 1.x
    tf.get_logger().setLevel('ERROR')  # deprecation notices of the tf.compat.v1 API
    graph = tf.Graph()
    with graph.as_default():
        pipeline = data.input_pipeline(cfg, root=dataset_root)
        try:
            net = models.create(cfg)
        except ValueError as e:  # a shape constraint of the networks, at build time
            raise config.ConfigError(str(e)) from None
        with tf.name_scope('summaries/'):
            grid = tf1.placeholder(tf.uint8, [None, None, 3], name='grid')
            grid_summary = tf.raw_ops.ImageSummary(tag='samples', tensor=grid[None],
                                                   max_images=1, name='samples')
        with tf.name_scope('checks/'):
            weights_finite = tf.reduce_all(
                [tf.reduce_all(tf.math.is_finite(v)) for v in tf1.global_variables()
                 if v.dtype.base_dtype.is_floating], name='weights_finite')
        saver = tf1.train.Saver(max_to_keep=cfg.keep_checkpoints, save_relative_paths=True)
        init_op = tf1.global_variables_initializer()
    graph.finalize()  # nothing can add ops per step: a growing graph is a slow leak

    config_file = os.path.join(cfg.run_dir, runs.CONFIG_FILE)
    if not os.path.exists(config_file):  # a new run; a resumed one saves with its checkpoints
        cfg.save(config_file)
    ckpt = Checkpoints(cfg, saver, weights_finite)
    steps_per_epoch = pipeline.steps_per_epoch
    total, epochs = total_steps(cfg, steps_per_epoch), cfg.n_epochs + cfg.n_epochs_decay
    with tf1.Session(graph=graph, config=session_config()) as sess:
        state = ckpt.restore(sess, net, init_op, steps_per_epoch)
        step = state['step']
        _log_start(cfg, changes, state, dataset_root, steps_per_epoch, total)
        if step >= total:
            print(f'{cfg.run_dir} is trained to step {step} of {total}: nothing to do (raise '
                  f'--max_steps or --n_epochs to train longer)')
            return 0
        writer = tf1.summary.FileWriter(cfg.run_dir, flush_secs=20)
        writer.add_graph(None, graph_def=graph.as_graph_def(add_shapes=True))  # no meta graph
        if step:  # TensorBoard drops what an interrupted session logged after the checkpoint
            writer.add_session_log(tf1.SessionLog(status=tf1.SessionLog.START), step)
        progress = Progress(cfg, step, total, models.LossAverager())
        lr = sess.run(net.learning_rate)
        trace_options = tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE)
        try:
            with StopSignals() as stop:
                while step < total and not stop.name:
                    step += 1
                    trace = due(step, cfg.trace_freq)
                    run_metadata = tf1.RunMetadata() if trace else None
                    result = net.train_step(
                        sess, sess.run(pipeline.next_batch),
                        summaries=due(step, cfg.summary_freq) or step == 1,
                        visuals=bool(net.visuals) and (due(step, cfg.display_freq) or step == 1),
                        options=trace_options if trace else None, run_metadata=run_metadata)
                    state['step'] = step
                    bad = [(k, v) for k, v in result['losses'].items() if not math.isfinite(v)]
                    if bad:
                        raise TrainingError(f'step {step}: loss {bad[0][0]} is {bad[0][1]}; '
                                            f'stopped without saving. {ckpt.describe_last()}')
                    progress.update(step, result['losses'], epoch=state['epoch'], epochs=epochs,
                                    lr=lr)
                    if 'summary' in result:
                        writer.add_summary(result['summary'], step)
                    if 'visuals' in result:
                        image = visuals.grid(*_grid_rows(result['visuals'], net.visual_rows))
                        visuals.save_png(image, os.path.join(cfg.run_dir, runs.SAMPLES,
                                                             f'step_{step:06d}.png'))
                        writer.add_summary(sess.run(grid_summary, {grid: image}), step)
                    if trace:
                        writer.add_run_metadata(run_metadata, f'step_{step:06d}', step)
                    if step - state['epoch_start'] >= steps_per_epoch:
                        state.update(epoch=state['epoch'] + 1, epoch_start=step)
                        net.set_epoch(sess, state['epoch'])
                        lr = sess.run(net.learning_rate)
                        _save(ckpt, sess, net, state, writer, progress,
                              f'end of epoch {state["epoch"]}/{epochs}')
                    elif due(step, cfg.save_freq):
                        _save(ckpt, sess, net, state, writer, progress, 'periodic')
            _save(ckpt, sess, net, state, writer, progress,
                  f'stopped by {stop.name}' if stop.name else 'end of training')
        finally:
            progress.close()
            writer.close()
    if stop.name:
        print(f'Stopped by {stop.name} at step {step}; run the same command to resume.')
    else:
        print(f'Done: {step} steps. Sample with: python sample.py --run {cfg.run_dir}')
    return 0


def _save(ckpt, sess, net, state, writer, progress, why):
    path = ckpt.save(sess, net, state)
    writer.flush()
    if path:
        progress.log(f'saved {path} ({why})')


def _grid_rows(images, visual_rows, max_items=4):
    """(rows, labels) for visuals.grid: the model's visual rows for each of
    the first ``max_items`` images of the batch."""
    n = min(max_items, len(next(iter(images.values()))))
    rows = [[images[name][i] for name in names] for i in range(n) for names in visual_rows]
    return rows, [names for _ in range(n) for names in visual_rows]


def _log_start(cfg, changes, state, dataset_root, steps_per_epoch, total):
    if state['step']:
        print(f'Resuming {cfg.run_dir} from {state["path"]} (step {state["step"]}, '
              f'epoch {state["epoch"] + 1})')
        if not state['host_state']:
            print('  (no saved image pools for it: the pools start empty)')
    else:
        print(f'New run {cfg.run_dir}: {cfg.model} on {dataset_root}')
    if changes:
        print('  changed settings: ' + ', '.join(f'{k} {old} -> {new}'
                                                 for k, (old, new) in changes.items()))
    print(f'  {steps_per_epoch} steps per epoch, training to step {total}; checkpoints in '
          f'{runs.checkpoint_dir(cfg.run_dir)}')
    print(f'  watch it: tensorboard --logdir {cfg.runs_dir}  (sample grids also in '
          f'{os.path.join(cfg.run_dir, runs.SAMPLES)})')
    sys.stdout.flush()


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(__doc__)
        print(config.define_flags(flags.FlagValues()).get_help())
        return 0
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)
    try:
        cfg, changes = parse(argv)
        root = datasets.prepare(cfg)
        return train(cfg, changes, root)
    except USER_ERRORS + (OSError,) as e:  # OSError: e.g. a folder that cannot be written
        print(f'train.py: error: {runs.one_line(e)}', file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f'train.py: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('train.py: interrupted before the first step; nothing was saved', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
