"""Trains a model: ``python train.py --dataset horse2zebra`` (see README.md).

Every flag comes from config.py (``python train.py --help`` for the options
of one model, ``--helpfull`` for all); a preset is a flag file
(``--flagfile presets/quickstart.flags``). The model is found by name in
registry.py. The run lives in <runs_dir>/<name> (layout in runs.py). Running
the same command again resumes from the latest checkpoint: weights,
optimizer slots, global step, epoch (the learning-rate schedule) and the
model's state outside the graph (CycleGAN's image pools).

Checkpoints are saved every --save_freq steps, at the end of each epoch and
at the end; Ctrl-C or SIGTERM saves at the current step and exits with 0.
A NaN or Inf loss, or a diverging one (checkpoints.MAX_LOSS, MAX_WEIGHT), stops
training without saving. A run resumes from its newest complete checkpoint;
one process trains a run folder at a time (runs.RunLock).

Exit status: 0 trained, or stopped by a signal and saved; 1 training failed
(NaN, Inf or divergence); 2 a bad command line, dataset or run folder, a
run in use, a full disk (one line on stderr); 130 interrupted before the
first step.
"""

import collections
import contextlib
import logging
import os
import signal
import sys
import textwrap
import time

import tqdm
from absl import flags

from cyclegan_tf import config, registry
from cyclegan_tf.data import datasets
from cyclegan_tf.evaluation import sampling
from cyclegan_tf.running import checkpoints, cluster, commands, runs, session

RESTART_HELP = ('start the run over in the same folder: the old folder is moved aside to '
                '<name>.restarted-<time>, never deleted')


def parse(argv):
    """(config, changes) of the command line ``argv`` (argv[0]: the program).

    The config is the one to train the run folder with (see runs.resolve:
    an existing run keeps its saved settings unless given again); changes
    maps each setting that differs from the saved run to (saved, new). With
    --restart an existing run folder is moved aside first. The official
    options that have nothing to set here are each named in one line.
    """
    flag_values = registry.define_flags(flags.FlagValues())
    flags.DEFINE_bool('restart', False, RESTART_HELP, flag_values=flag_values)
    config.parse_argv(flag_values, argv)
    cfg = registry.from_flags(flag_values)
    for line in registry.official_notes(flag_values):
        print(f'train.py: note: {line}')
    if flag_values['restart'].value and os.path.exists(cfg.run_dir):
        with runs.RunLock(cfg.run_dir):  # a run in training is not moved away under it
            pass
        print(f'train.py: --restart: moved {cfg.run_dir} aside to {runs.move_aside(cfg.run_dir)}')
    given = list(config.given_options(flag_values, cfg.options()))
    if flag_values['model'].present:
        given.append('model')
    return runs.resolve(cfg, given)


def due(step, freq):
    """Whether a periodic action every ``freq`` steps (0: never) falls on ``step``."""
    return freq > 0 and step % freq == 0


def total_steps(cfg, steps_per_epoch):
    """The iterations of a run: its epochs from --epoch_count on, or --max_steps."""
    epochs = cfg.n_epochs + cfg.n_epochs_decay - (cfg.epoch_count - 1)
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


LOG_WIDTH = 120  # columns of the log lines


class LossAverager:
    """Exponential moving averages of named losses, for a steadier display.

    ``update(losses)`` takes one iteration's losses (name -> float, e.g.
    ``train_step(...)['losses']``) and returns the averages so far. Each
    average is debiased as Adam's moments: after values x_1 ... x_n it is
    sum_k (1 - decay) decay^(n - k) x_k / (1 - decay^n), so the first value
    shows as it is and a name first seen late starts afresh. decay 0 shows
    the last values; 0.98 averages over roughly the last 50 iterations.
    Plain Python, no graph: the same for every model.
    """

    def __init__(self, decay=0.98):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'decay must be in [0, 1), got {decay}')
        self.decay = decay
        self._sums, self._counts = {}, {}

    def update(self, losses):
        """Adds one value per name; returns :attr:`averages`."""
        for name, value in losses.items():
            self._sums[name] = (self.decay * self._sums.get(name, 0.0)
                                + (1.0 - self.decay) * float(value))
            self._counts[name] = self._counts.get(name, 0) + 1
        return self.averages

    @property
    def averages(self):
        """name -> the debiased moving average of its values so far."""
        return {name: total / (1.0 - self.decay ** self._counts[name])
                for name, total in self._sums.items()}

    def reset(self):
        self._sums, self._counts = {}, {}


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
            self.log(f'step {step}/{self.total}  epoch {epoch + 1}/{epochs}  {rate}  '
                     f'lr {lr:.2e}  G {g_loss:.3f}  D {d_loss:.3f}')
            values = '  '.join(f'{k} {v:.3f}' for k, v in averages.items())
            self.log(textwrap.fill(values, width=LOG_WIDTH, initial_indent='    ',
                                   subsequent_indent='    '))

    def close(self):
        self.bar.close()


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    return f'{seconds // 60}m{seconds % 60:02d}s'


class Loop:
    """The training loop of a built model in a session, and its periodic
    actions. :meth:`run` is the algorithm; each step it names is a method."""

    def __init__(self, cfg, sess, net, pipeline, saving, writer, images):
        self.cfg, self.sess, self.net, self.pipeline = cfg, sess, net, pipeline
        self.checkpoints, self.writer, self.images = saving, writer, images
        self.epochs = cfg.n_epochs + cfg.n_epochs_decay
        self.total = total_steps(cfg, pipeline.steps_per_epoch)
        self.step = self.epoch = self.epoch_start = 0
        # --eval_freq scores the checkpoints written: the chief's, with several workers.
        self.quality = Quality(cfg) if getattr(cfg, 'eval_freq', 0) and saving.writes \
            else None

    def run(self):
        """Trains from self.step to self.total; returns the signal that
        stopped it early, or None."""
        self.progress = Progress(self.cfg, self.step, self.total, LossAverager())
        self.lr = self.sess.run(self.net.learning_rate)
        try:
            with StopSignals() as stop:
                while self.step < self.total and not stop.name:
                    self.step += 1
                    result = self.train_step()
                    self.progress.update(self.step, result['losses'], epoch=self.epoch,
                                         epochs=self.epochs, lr=self.lr)
                    self.write_summaries(result)
                    if self.step - self.epoch_start >= self.pipeline.steps_per_epoch:
                        self.end_epoch()
                    elif due(self.step, self.cfg.save_freq):
                        self.save('periodic')
            self.save(f'stopped by {stop.name}' if stop.name else 'end of training')
        finally:
            self.progress.close()
            self.writer.close()
        return stop.name

    def train_step(self):
        """One iteration on the next batch; raises TrainingError on a NaN, Inf
        or diverging loss."""
        import tensorflow as tf

        tf1, cfg, step = tf.compat.v1, self.cfg, self.step
        trace = due(step, cfg.trace_freq)
        self.run_metadata = tf1.RunMetadata() if trace else None
        result = self.net.train_step(
            self.sess, self.sess.run(self.pipeline.next_batch),
            summaries=due(step, cfg.summary_freq) or step == 1,
            visuals=bool(self.net.visuals) and (due(step, cfg.display_freq) or step == 1),
            options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE) if trace else None,
            run_metadata=self.run_metadata)
        checkpoints.check_losses(step, result['losses'], self.checkpoints.describe_last())
        return result

    def write_summaries(self, result):
        """Scalars, the sample grid (samples/ and TensorBoard) and the trace
        that this step's result holds."""
        if 'summary' in result:
            self.writer.add_summary(result['summary'], self.step)
        if 'visuals' in result:
            self.write_image('samples', _grid(result['visuals'], self.net.visual_rows),
                             f'step_{self.step:06d}.png')
        if self.run_metadata is not None:
            self.writer.add_run_metadata(self.run_metadata, f'step_{self.step:06d}', self.step)

    def write_image(self, tag, image, file_name):
        from cyclegan_tf.evaluation import visuals

        visuals.save_png(image, os.path.join(self.cfg.run_dir, runs.SAMPLES, file_name))
        self.writer.add_summary(self.images(tag, image), self.step)

    def write_scalars(self, group, values):
        """``values`` (name -> float) as TensorBoard scalars <group>/<name> at this step."""
        import tensorflow as tf

        tf1 = tf.compat.v1
        self.writer.add_summary(tf1.Summary(value=[
            tf1.Summary.Value(tag=f'{group}/{name}', simple_value=value)
            for name, value in values.items()]), self.step)

    def end_epoch(self):
        """The model's end-of-epoch report, the next epoch's learning rate, a checkpoint."""
        metrics, images = self.net.epoch_report(self.sess)
        self.epoch, self.epoch_start = self.epoch + 1, self.step
        if metrics:
            self.write_scalars('eval', metrics)
            self.progress.log(f'epoch {self.epoch}/{self.epochs}: ' + '  '.join(
                f'{name} {value:.4g}' for name, value in metrics.items()))
        for name, image in images.items():
            self.write_image(name, image, f'{name}_epoch_{self.epoch:04d}.png')
        self.net.set_epoch(self.sess, self.epoch)
        self.lr = self.sess.run(self.net.learning_rate)
        evaluate = self.quality is not None and due(self.epoch, self.cfg.eval_freq)
        if due(self.epoch, self.cfg.save_epoch_freq):
            self.save(f'end of epoch {self.epoch}/{self.epochs}')
            kept = runs.copy_checkpoint(self.checkpoints.prefix(self.step), os.path.join(
                self.checkpoints.dir, runs.snapshot_folder(self.epoch)))
            self.progress.log(f'kept {kept} (epoch {self.epoch} snapshot)')
        elif evaluate:
            self.save(f'end of epoch {self.epoch}/{self.epochs}, to evaluate')
        if evaluate:
            self.evaluate()

    def evaluate(self):
        """FID and KID of the checkpoint just saved (--eval_freq), logged as
        eval/<name>; the best checkpoint is kept in checkpoints/best/."""
        values, best = self.quality.score(self.checkpoints.prefix(self.step))
        self.write_scalars('eval', values)
        self.progress.log(f'epoch {self.epoch} eval: ' + '  '.join(
            f'{name} {value:.3f}' for name, value in values.items())
            + ('  (best so far: kept in checkpoints/best)' if best else ''))

    def save(self, why):
        path = self.checkpoints.save(self.sess, self.net, self.step, self.epoch_start)
        self.writer.flush()
        if path:
            self.progress.log(f'saved {path} ({why})')


class Quality:
    """--eval_freq: translates the test split (--eval_num images per
    direction) with a checkpoint and scores it by FID and KID (metrics.py);
    keeps the checkpoint of the lowest sum of FIDs (runs.keep_best). The
    Inception weights are loaded when training starts, so a missing file
    fails before the first step."""

    def __init__(self, cfg):
        from cyclegan_tf.evaluation import inception

        self.cfg = cfg
        self.extractor = inception.FeatureExtractor(cfg.fid_weights or None, progress=False)
        self.extractor.features([])  # builds the network: the weights are checked now
        self.work = sampling.jobs(cfg, num_test=cfg.eval_num)
        try:
            self.best = runs.best_record(cfg.run_dir)['scores']['fid_sum']
        except (runs.RunError, KeyError, TypeError):
            self.best = None

    def score(self, prefix):
        """(name -> value, whether ``prefix`` is the best so far)."""
        from cyclegan_tf import inference

        with inference.Translator(self.cfg, prefix, training=True) as translator:
            work = [job for job in self.work if job[0] in translator.keys]  # CUT: A only
            results = sampling.translate(translator, self.cfg, work, out=None, write=False)
        scores = sampling.add_quality_scores(results, self.cfg, self.extractor)
        values = {}
        for direction, entry in scores.items():
            if 'fid' in entry:
                values[f'fid_{direction[-1]}'] = entry['fid']
                values[f'kid_{direction[-1]}'] = entry['kid_mean']
        fids = [v for k, v in values.items() if k.startswith('fid_')]
        if not fids:
            return values, False
        values['fid_sum'] = sum(fids)
        better = self.best is None or values['fid_sum'] < self.best
        if better:
            runs.keep_best(prefix, self.cfg.run_dir, values)
            self.best = values['fid_sum']
        return values, better


def _grid(images, visual_rows, max_items=4):
    """The sample grid of a step's visuals: the model's visual rows for each
    of the first ``max_items`` images of the batch."""
    from cyclegan_tf.evaluation import visuals

    n = min(max_items, len(next(iter(images.values()))))
    rows = [[images[name][i] for name in names] for i in range(n) for names in visual_rows]
    return visuals.grid(rows, [names for _ in range(n) for names in visual_rows])


Built = collections.namedtuple(
    'Built', 'graph pipeline net saver partial weights init_op summary')


def build(cfg, dataset_root, setup=None):
    """The training graph, finalized, as a Built: graph, pipeline, model,
    saver, partial (checkpoints.PartialRestore or None), weight check
    (checkpoints.WeightCheck), init op, image summary (tag and image
    placeholders, summary op). With a distributed ``setup``
    (cluster.Setup) the pipeline reads the global batches of this
    worker's replicas and the model is built in the strategy's scope;
    ``setup.sync_op`` is then built too."""
    from cyclegan_tf.running import replicas  # the graph of the model: TensorFlow

    tf = session.graph_mode()
    tf1 = tf.compat.v1
    spec = registry.of(cfg)
    graph = tf.Graph()
    setup = setup or cluster.Setup()
    with graph.as_default():
        with tf.name_scope('data'):
            if setup.distributed:  # replicas x batch_size examples, this worker's share
                pipeline = cluster.shard_pipeline(spec.model_class.input_pipeline(
                    cfg.replace(batch_size=cfg.batch_size * setup.local_replicas),
                    dataset_root, spec.data), setup)
            else:
                pipeline = spec.model_class.input_pipeline(cfg, dataset_root, spec.data)
        try:
            net = replicas.create(cfg, setup)
        except ValueError as e:  # a shape constraint of the networks, at build time
            raise config.ConfigError(str(e)) from None
        if setup.multi_worker:
            with setup.strategy.scope():
                setup.sync_op = cluster.sync_from_chief()
        with tf.name_scope('summaries/'):
            tag = tf1.placeholder(tf.string, [], name='image_tag')
            image = tf1.placeholder(tf.uint8, [None, None, 3], name='image')
            image_summary = tf.raw_ops.ImageSummary(tag=tag, tensor=image[None], max_images=1,
                                                    name='image')
        with tf.name_scope('checks/'):
            weights = checkpoints.WeightCheck()
        saver = tf1.train.Saver(max_to_keep=cfg.keep_checkpoints, save_relative_paths=True)
        partial = checkpoints.PartialRestore.of_graph()
        init_op = tf1.global_variables_initializer()
    graph.finalize()  # nothing can add ops per step: a growing graph is a slow leak
    return Built(graph, pipeline, net, saver, partial, weights, init_op,
                 (tag, image, image_summary))


def train(cfg, changes, dataset_root):
    """Trains ``cfg`` in cfg.run_dir from its latest checkpoint; returns the exit status."""
    checkpoints.Checkpoints.check(cfg.run_dir)
    setup = cluster.configure(cfg)  # before TensorFlow sets up its devices
    built = build(cfg, dataset_root, setup)
    graph, pipeline, net = built.graph, built.pipeline, built.net
    import tensorflow as tf

    tf1 = tf.compat.v1
    if not setup.is_chief:  # writes nothing into the run folder (cluster.py)
        cfg = cluster.scratch_config(cfg)
    config_file = os.path.join(cfg.run_dir, runs.CONFIG_FILE)
    new = not os.path.exists(config_file)
    if new:  # a resumed run saves its settings with its checkpoints
        runs.save_config(cfg, config_file)
    saving = (checkpoints.Checkpoints if setup.is_chief else cluster.WorkerCheckpoints)(
        cfg, built.saver, built.weights, partial=built.partial)
    if cfg.verbose:
        _print_networks(net)
    session_config = cluster.session_config(cfg, setup, base=session.session_config())
    with tf1.Session(setup.target, graph=graph, config=session_config) as sess:
        step, epoch, epoch_start, path = _restore(cfg, sess, built, setup, saving)
        total = total_steps(cfg, pipeline.steps_per_epoch)
        _log_start(cfg, changes, step, epoch, path, new, dataset_root,
                   pipeline.steps_per_epoch, total)
        for line in cluster.log_lines(cfg, setup):
            print(line, flush=True)
        if step >= total:
            print(f'{cfg.run_dir} is trained to step {step} of {total}: nothing to do (raise '
                  f'--max_steps or --n_epochs to train longer)')
            return commands.EXIT_OK
        writer = tf1.summary.FileWriter(cfg.run_dir, flush_secs=20)
        writer.add_graph(None, graph_def=graph.as_graph_def(add_shapes=True))  # no meta graph
        if step:  # TensorBoard drops what an interrupted session logged after the checkpoint
            writer.add_session_log(tf1.SessionLog(status=tf1.SessionLog.START), step)
        tag, image, image_summary = built.summary
        loop = Loop(cfg, sess, net, pipeline, saving, writer,
                    lambda name, array: sess.run(image_summary, {tag: name, image: array}))
        loop.step, loop.epoch, loop.epoch_start = step, epoch, epoch_start
        stopped = loop.run()
    if stopped:
        print(f'Stopped by {stopped} at step {loop.step}; run the same command to resume.')
    else:
        print(f'Done: {loop.step} steps. Sample with: python sample.py --run {cfg.run_dir}')
    return commands.EXIT_OK


def _restore(cfg, sess, built, setup, saving):
    """(step, epoch, epoch_start, checkpoint path or None) after restoring the
    newest complete checkpoint (all workers: the chief's) or initializing."""
    steps_per_epoch = built.pipeline.steps_per_epoch
    if setup.multi_worker:
        step, epoch, epoch_start, path, _ = cluster.restore_workers(
            sess, built.net, built.init_op, setup, saving, steps_per_epoch)
    else:
        step, epoch, epoch_start, path, _ = saving.restore(sess, built.net, built.init_op,
                                                           steps_per_epoch)
    if step == 0 and cfg.epoch_count > 1:  # fine-tuning: the schedule starts later
        epoch = cfg.epoch_count - 1
        built.net.set_epoch(sess, epoch)
    return step, epoch, epoch_start, path


def _print_networks(net):
    """--verbose: each network, its variables and its parameter count."""
    for name, network in net.networks.items():
        print(f'[{name}] {type(network).__name__}: {network.num_params:,} parameters')
        for variable in network.variables:
            print(f'    {variable.op.name:60s} {variable.shape.as_list()}')


def _log_start(cfg, changes, step, epoch, path, new, dataset_root, steps_per_epoch,
               total):
    if path:
        print(f'Resuming {cfg.run_dir} from {path} (step {step}, epoch {epoch + 1})')
    elif not new:
        print(f'Resuming {cfg.run_dir}: no checkpoint was saved yet, training from step 0')
    else:
        source = f' on {dataset_root}' if dataset_root else ''
        print(f'New run {cfg.run_dir}: {cfg.model}{source}')
    if changes:
        print('  changed settings: ' + ', '.join(f'{k} {old} -> {new}'
                                                 for k, (old, new) in changes.items()))
    print(f'  {steps_per_epoch} steps per epoch, training to step {total}; checkpoints in '
          f'{runs.checkpoint_dir(cfg.run_dir)}')
    print(f'  watch it: tensorboard --logdir {cfg.runs_dir}  (samples also in '
          f'{os.path.join(cfg.run_dir, runs.SAMPLES)})')
    sys.stdout.flush()


def print_help(argv):
    """--help: the options of the model named on the command line (default
    cycle_gan), grouped; --helpfull: every model's."""
    full = '--helpfull' in argv
    model = 'cycle_gan'
    for i, arg in enumerate(argv[1:], 1):
        if arg.startswith('--model='):
            model = arg.split('=', 1)[1]
        elif arg == '--model' and i + 1 < len(argv):
            model = argv[i + 1]
    print(__doc__)
    models = '\n'.join(f'  {spec.name:14s}{spec.summary}' for spec in registry.MODELS.values())
    print(f'Models (--model):\n{models}\n')
    if full:
        print('Options of every model ([m only]: of model m only):')
        print(registry.help_text())
    else:
        spec = registry.get(model)
        print(f'Options of --model {spec.name} (--helpfull: of every model):')
        print(registry.help_text(spec.name))
    print('\nAlso:\n' + textwrap.fill(
        f'--restart: {RESTART_HELP}. --flagfile FILE reads flags from a file (see presets/). '
        'The official options are accepted under their names (--dataroot, --checkpoints_dir, '
        '--continue_train, ...; see README.md).', width=96))
    return commands.EXIT_OK


def run(argv):
    if commands.wants_help(argv):
        return print_help(argv)
    cfg, changes = parse(argv)
    spec = registry.of(cfg)
    # Before TensorFlow loads (seconds): what will run, and where.
    source = f' on {cfg.dataset} ({cfg.phase})' if spec.images else ''
    print(f'train.py: {cfg.model}{source} -> {cfg.run_dir}; loading TensorFlow ...')
    sys.stdout.flush()
    session.select_gpus(cfg.gpu_ids)
    root = datasets.prepare(cfg, cfg.phase, layout=spec.data) if spec.images else None
    # The chief trains the run folder; the other workers of a cluster write
    # nothing into it (cluster.scratch_config), so they take no lock.
    lock = runs.RunLock(cfg.run_dir) if cluster.is_chief() else contextlib.nullcontext()
    try:
        with lock:
            return train(cfg, changes, root)
    except checkpoints.TrainingError as e:
        print(f'train.py: error: {e}', file=sys.stderr)
        return commands.EXIT_FAILED
    except Exception as e:  # noqa: B902 -- only a lost worker's error is caught here
        why = cluster.worker_failure(e, cfg)
        if why is None:
            raise
        print(f'train.py: error: {why}', file=sys.stderr)
        return commands.EXIT_FAILED
    except KeyboardInterrupt:
        print('train.py: interrupted before the first step; nothing was saved', file=sys.stderr)
        return commands.EXIT_INTERRUPTED


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)
    return commands.run_command('train.py', run, sys.argv if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
