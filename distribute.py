"""Data-parallel and multi-worker training on TensorFlow's distributed runtime.

``--num_replicas N`` trains N replicas of the model in step on one machine
with ``tf.distribute.MirroredStrategy``: GPUs 0..N-1, or, without GPUs, N
logical CPU devices (how it is tested). The standard ``TF_CONFIG``
environment variable (a cluster of workers, this task's type and index)
selects ``MultiWorkerMirroredStrategy``: collective all-reduce over gRPC, in
graph mode with a ``tf.distribute.Server`` per worker and the session on its
target; every worker runs the same train.py command, worker 0 is the chief.

What is per replica and what is shared:

- ``--batch_size`` is per replica; the global batch is num_replicas x
  batch_size (x workers). Each worker reads the global batches of its
  replicas from its input pipeline and feeds each replica its slice;
  with W workers, worker i takes batches i, i + W, i + 2W, ...
- Each replica runs the model's whole ``_build`` (forward, losses, the
  update order of the model) on its slice, under its own name scope
  (``replica_<r>/``); the variables are mirrored (one copy per device, one
  entry per variable in a checkpoint, as a single device's, so sample.py
  and a single-device run read them). Each optimizer update all-reduces
  the gradients (TensorFlow's v1 optimizer sums them in its cross-replica
  merge; each replica's loss is divided by the replica count, so the sum is
  the mean: with equal slices, one device's gradient of the global batch).
  The losses shown are the mean over replicas of each replica's loss.
- Instance norm (CycleGAN) normalizes each image alone, so two replicas
  with one image each compute exactly what one device does with two.
  Batch norm (pix2pix) normalizes over each replica's slice, as the
  official DistributedDataParallel without SyncBatchNorm; each replica
  updates the moving averages of its own device's copy, and a checkpoint
  holds replica 0's, as DDP's broadcast buffers are rank 0's (a resume
  gives every replica the saved ones).
- Host state (CycleGAN's image pools) is per replica: replica r keeps its
  own pool, saved with replica r's keys (replica 0's as a single device's,
  the others' prefixed ``replica_<r>/``); a resume with another replica
  count merges the saved pools and deals their images out again
  (Model.regroup_host_states).
- Only the chief writes the run folder (checkpoints, summaries, samples,
  config.json); the others write into a temporary folder they remove.
  On a resume the chief restores the checkpoint and every worker then
  takes the chief's variables (:func:`sync_from_chief`): the others need
  no access to the run folder. Their image pools start empty. With
  --eval_freq the chief scores its checkpoints alone; the others wait for
  it at the next step (within --worker_timeout).
- --amp on a GPU: TensorFlow's auto_mixed_precision graph rewrite runs
  what is safe in float16, and each gradient computation of the model
  (one per group of networks sharing a loss) has a dynamic loss scale
  (:func:`dynamic_loss_scale`, TensorFlow's own): the loss is multiplied by
  it and the gradients divided by it; a step whose gradients are not
  finite on any replica is skipped on every replica and halves the scale
  (:func:`apply_if_finite`). The scales are saved in the checkpoints but a
  checkpoint may lack them (runtime.PartialRestore).
- A dead worker: a step that waits on the others longer than
  ``--worker_timeout`` seconds fails (the session's operation timeout);
  train.py stops with one line and exit status 1.

This module imports TensorFlow only inside its functions.
"""

import json
import os

import numpy as np

import config
import runtime

REPLICA_PREFIX = 'replica_{}/'  # host-state keys of replica r > 0


class ClusterError(config.ConfigError):
    """A bad TF_CONFIG or replica setting: one line, exit status 2."""


def cluster_from_env(environ=None):
    """(workers, task index) of ``TF_CONFIG``: the workers' addresses, the
    chief first (a 'chief' job comes before the 'worker' job), and this
    task's index among them; None without TF_CONFIG or with one worker only."""
    text = (os.environ if environ is None else environ).get('TF_CONFIG', '').strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
        cluster, task = spec['cluster'], spec['task']
        workers = list(cluster.get('chief', [])) + list(cluster.get('worker', []))
        kind, index = task['type'], int(task['index'])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ClusterError(f'TF_CONFIG is not a cluster of workers and a task '
                           f'({type(e).__name__}: {e})') from None
    if set(cluster) - {'chief', 'worker'}:
        raise ClusterError(f'TF_CONFIG: train.py runs workers (and a chief) only, not '
                           f'{", ".join(sorted(set(cluster) - {"chief", "worker"}))}')
    if kind not in ('chief', 'worker'):
        raise ClusterError(f'TF_CONFIG: task type must be chief or worker, got {kind!r}')
    position = index + (len(cluster.get('chief', [])) if kind == 'worker' else 0)
    if not 0 <= position < len(workers) or (kind == 'chief' and index != 0):
        raise ClusterError(f'TF_CONFIG: task {kind} {index} is not in the cluster')
    return (workers, position) if len(workers) > 1 else None


def is_chief(environ=None):
    """Whether this process is the chief (worker 0) of its TF_CONFIG, or
    trains alone; TensorFlow-free, for train.py's run-folder lock."""
    cluster = cluster_from_env(environ)
    return cluster is None or cluster[1] == 0


class Setup:
    """How this process trains: ``strategy`` (None: one device, today's
    path), ``local_replicas`` (replicas on this machine), ``num_replicas``
    (all workers'), ``num_workers``, ``worker`` (this worker's index),
    ``is_chief``, ``target`` (the session target: '' or the worker's gRPC
    server), ``devices`` (a description for the log) and ``gpu``."""

    def __init__(self, strategy=None, *, local_replicas=1, num_workers=1, worker=0,
                 target='', devices='one device', gpu=False, server=None):
        self.strategy, self.local_replicas = strategy, local_replicas
        self.num_workers, self.worker, self.target = num_workers, worker, target
        self.num_replicas = local_replicas * num_workers
        self.is_chief, self.devices, self.gpu = worker == 0, devices, gpu
        self.server = server  # kept alive as long as the session needs it
        self.sync_op = None  # train.build's sync_from_chief, with several workers

    @property
    def distributed(self):
        return self.strategy is not None

    @property
    def multi_worker(self):
        return self.num_workers > 1

    def mixed_precision(self, cfg):
        """Whether --amp applies: float16 by the graph rewrite (session_config)
        with dynamic loss scaling (model.Model's loss_scaling); on a GPU only."""
        return self.gpu and cfg.amp


def configure(cfg, environ=None):
    """The Setup of ``cfg`` (num_replicas) and of TF_CONFIG. Call it before
    TensorFlow uses its devices: it makes the N logical CPU devices of a
    machine without GPUs, or hides the GPUs past the first N.

    Raises ClusterError (a ConfigError) for settings this machine cannot run.
    """
    cluster = cluster_from_env(environ)
    if cfg.num_replicas < 1:
        raise ClusterError(f'--num_replicas must be >= 1, got {cfg.num_replicas}')
    if cfg.worker_timeout < 1:
        raise ClusterError(f'--worker_timeout must be >= 1 second, got {cfg.worker_timeout}')
    tf = runtime.graph_mode()  # first: in eager mode the strategy would start its own server

    gpus = tf.config.list_physical_devices('GPU')
    n = cfg.num_replicas
    if gpus:
        if n > len(gpus):
            raise ClusterError(f'--num_replicas {n} needs {n} GPUs; this machine has '
                               f'{len(gpus)}')
        if n < len(gpus):
            tf.config.set_visible_devices(gpus[:n], 'GPU')
    elif cluster and n > 1:
        raise ClusterError('with TF_CONFIG a worker without GPUs trains one replica: drop '
                           '--num_replicas (it counts the GPUs of each worker)')
    elif n > 1:
        cpu = tf.config.list_physical_devices('CPU')[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:  # TensorFlow's devices are set already (a test's process)
            if len(tf.config.list_logical_devices('CPU')) != n:
                raise ClusterError(f'--num_replicas {n}: TensorFlow already set up its CPU '
                                   f'devices in this process; run train.py in a fresh '
                                   f'process') from None
    kind = 'GPU' if gpus else 'CPU'
    if cluster:
        return _multi_worker(cfg, cluster, n if gpus else 1, kind, bool(gpus))
    if n == 1:
        return Setup(gpu=bool(gpus))
    devices = [f'/{kind.lower()}:{i}' for i in range(n)]
    # On CPUs MirroredStrategy would all-reduce with collective ops, which
    # deadlocked a TF1 session now and then (one CycleGAN step never ended);
    # summing on the first device is TensorFlow's other stock reduction. On
    # GPUs the default stays: NCCL.
    strategy = tf.distribute.MirroredStrategy(
        devices, cross_device_ops=None if gpus else tf.distribute.ReductionToOneDevice())
    return Setup(strategy, local_replicas=n, devices=f'{n} {kind}s ({", ".join(devices)})',
                 gpu=bool(gpus))


def _multi_worker(cfg, cluster, local, kind, gpu):
    """MultiWorkerMirroredStrategy in graph mode: the strategy reads
    TF_CONFIG; the worker's gRPC server is started here with the strategy's
    session settings (collective group leader, device filters), and the
    session runs on its target."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    workers, index = cluster
    strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    proto = session_config(cfg, Setup(strategy, gpu=gpu), base=tf1.ConfigProto())
    try:
        server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                      task_index=resolver.task_id, config=proto, start=True)
    except (tf.errors.OpError, ValueError) as e:
        raise ClusterError(f'cannot start the server of worker {index} at {workers[index]} '
                           f'({type(e).__name__}: {str(e).splitlines()[0][:200]})') from None
    return Setup(strategy, local_replicas=local, num_workers=len(workers), worker=index,
                 target=server.target, server=server, gpu=gpu,
                 devices=f'worker {index} of {len(workers)} ({workers[index]}), '
                         f'{local} {kind} replica(s) each')


def session_config(cfg, setup, *, base):
    """``base`` (runtime.session_config's proto) with the settings of the
    strategy (collectives), the worker timeout, and on a GPU --amp and --xla."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    proto = tf1.ConfigProto()
    proto.CopyFrom(base)
    if setup.distributed:
        proto = setup.strategy.update_config_proto(proto)
        if not setup.gpu:  # a session with a config of its own sees one CPU device unless told
            proto.device_count['CPU'] = max(proto.device_count['CPU'], setup.local_replicas)
    if setup.distributed and _is_multi_worker(setup.strategy):
        proto.operation_timeout_in_ms = cfg.worker_timeout * 1000
    if setup.mixed_precision(cfg):
        rewrite = proto.graph_options.rewrite_options
        rewrite.auto_mixed_precision = rewrite.ON
    if setup.gpu and cfg.xla:
        proto.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return proto


def _is_multi_worker(strategy):
    """Whether ``strategy`` is MultiWorkerMirroredStrategy (its collectives
    wait on the other workers)."""
    return 'Collective' in type(strategy.extended).__name__


def log_lines(cfg, setup):
    """What train.py logs about the replicas, and about --amp and --xla
    where they do nothing."""
    lines = []
    if setup.distributed:
        workers = f' x {setup.num_workers} workers' if setup.multi_worker else ''
        lines.append(f'  data parallel on {setup.devices}: {setup.local_replicas} replica(s)'
                     f'{workers} x batch_size {cfg.batch_size} = global batch '
                     f'{setup.num_replicas * cfg.batch_size}'
                     + ('' if setup.is_chief else '; the chief writes the run folder'))
    for name in ('amp', 'xla'):
        if getattr(cfg, name) and not setup.gpu:
            lines.append(f'  --{name}: does nothing useful on a CPU (measured slower there): '
                         f'not applied')
    return lines


# ----------------------------------------------------------------- the model


def build_replicas(model):
    """Builds ``model`` (a model.Model inside a strategy's scope, its global
    step, epoch and learning rate built) on every local replica.

    Each replica runs ``model._build()`` on a shallow copy of the model, a
    view with its own inputs, networks (sharing the mirrored variables),
    losses, visuals and host state (image pools), and ``replica``: its index
    among all workers' replicas. The optimizers are shared (one per network,
    created by the first replica; ``apply_gradients`` all-reduces in the
    strategy's merge). Then the model itself takes replica 0's attributes,
    except: ``losses`` (the mean over all replicas), ``visuals`` (the local
    replicas' concatenated on the batch), ``train_op`` (every local
    replica's) and ``replicas`` (the views, replica 0 first).
    """
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    views = []

    @tf.autograph.experimental.do_not_convert  # graph code as written, not converted
    def replica_fn():
        context = tf.distribute.get_replica_context()
        view = _view(model, int(tf.get_static_value(context.replica_id_in_sync_group)))
        view._build()
        views.append(view)
        return view.losses, view.visuals, view.train_op

    losses, visuals, train_ops = strategy.extended.call_for_each_replica(replica_fn)
    views.sort(key=lambda view: view.replica)
    shared = dict(vars(views[0]))
    for name in ('losses', 'visuals', 'train_op', 'replica'):
        shared.pop(name)
    vars(model).update(shared)
    with tf.name_scope('replicas/'):
        model.losses = {name: tf.identity(strategy.reduce(tf.distribute.ReduceOp.MEAN, loss,
                                                          axis=None), name=name)
                        for name, loss in losses.items()}
        model.visuals = {name: tf.concat(strategy.experimental_local_results(images), 0,
                                         name=name)
                         for name, images in visuals.items()}
        model.train_op = tf.group(strategy.experimental_local_results(train_ops),
                                  name='train_op')
    model.replicas, model.num_replicas = views, strategy.num_replicas_in_sync


def _view(model, replica):
    import copy

    view = copy.copy(model)
    view.replica = replica
    view.networks, view.losses, view.var_lists = {}, {}, {}
    view.visuals, view.visual_rows = {}, []
    return view  # view.optimizers is the model's: one optimizer per network


def replica_share(loss):
    """``loss`` divided by the number of replicas in sync, inside a replica
    of a strategy (the optimizers sum the replicas' gradients); ``loss``
    itself on one device."""
    import tensorflow as tf

    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    return loss if replicas == 1 else tf.math.divide(loss, float(replicas),
                                                     name='per_replica_share')


# ------------------------------------------------------ mixed precision


def dynamic_loss_scale():
    """TensorFlow's v1 dynamic loss scale, as its graph-rewrite mixed
    precision optimizer uses it: 2^15 at first, halved at every step whose
    gradients overflow (that step is skipped), doubled after 2000 steps
    without an overflow. Its two variables are in the collection
    runtime.OPTIONAL_VARIABLES."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    before = {id(v) for v in tf1.global_variables()}
    scale = tf1.mixed_precision.DynamicLossScale()
    for variable in tf1.global_variables():
        if id(variable) not in before:
            tf1.add_to_collection(runtime.OPTIONAL_VARIABLES, variable)
    return scale


def scaled_gradients(loss, variables, scale, *, name):
    """The gradients of ``loss`` with respect to ``variables``; with a loss
    ``scale`` (dynamic_loss_scale), computed on loss x scale and divided by
    it (a power of two: exact where nothing overflows)."""
    import tensorflow as tf

    if scale is None:
        return tf.gradients(loss, variables, name=name)
    factor = scale()
    grads = tf.gradients(tf.math.multiply(loss, factor, name='scaled_loss'), variables,
                         name=name)
    with tf.name_scope('unscaled/'):
        return [None if g is None else tf.math.divide(g, factor) for g in grads]


def apply_if_finite(scale, apply, grads, dependencies):
    """``apply(grads, dependencies)`` (the optimizers' updates, built in a replica
    context) when every replica's ``grads`` are finite; otherwise none, on
    every replica. Either way the loss ``scale`` is updated. Works on one
    device (TensorFlow's default strategy) and with replicas: in the
    strategy's merge, as TensorFlow's loss-scale optimizer does, so the
    replicas all skip or all apply and their weights stay equal."""
    import tensorflow as tf

    def merge(strategy, grads, dependencies):
        update_scale, finite = scale.update(grads)

        def updates():
            return strategy.group(strategy.extended.call_for_each_replica(
                apply, args=(grads, dependencies)))

        with tf.name_scope('apply_if_finite/'):
            return tf.group(tf.cond(finite, updates, tf.no_op), update_scale)

    return tf.distribute.get_replica_context().merge_call(merge, args=(grads, dependencies))


def feed_dict(replicas, batch):
    """The feed of one step: replica i of the local ``replicas`` gets the
    i-th of equal slices of each array of the global ``batch``. A batch
    smaller than the replica count (the last of an epoch) is first repeated
    up to it, so no replica gets an empty slice; with a batch that does not
    divide evenly, the slices differ by one example."""
    feed = {}
    n = len(replicas)
    for key in replicas[0].inputs:
        array = batch[key]
        if len(array) < n:
            array = np.concatenate([array] * (n // len(array) + 1))[:n]
        for view, part in zip(replicas, np.array_split(array, n)):
            feed[view.inputs[key]] = part
    return feed


# --------------------------------------------------------------- host state


def gather_host_states(states):
    """One host state of the replicas' ``states`` (replica index -> dict):
    replica 0's keys as they are, replica r's prefixed ``replica_<r>/``."""
    return {(REPLICA_PREFIX.format(r) if r else '') + key: value
            for r, state in sorted(states.items()) for key, value in state.items()}


def split_host_states(state):
    """The inverse of :func:`gather_host_states`: a list of dicts, one per
    replica saved (one for a single device's state)."""
    states = {0: {}}
    for key, value in state.items():
        head, _, rest = key.partition('/')
        if head.startswith('replica_') and head[len('replica_'):].isdigit() and rest:
            states.setdefault(int(head[len('replica_'):]), {})[rest] = value
        else:
            states[0][key] = value
    return [states.get(r, {}) for r in range(max(states) + 1)]


# ---------------------------------------------------------------- workers


def sync_from_chief():
    """An op, built in the strategy's scope, that gives every replica of
    every worker the chief's values of all global variables: an all-reduce
    (sum) in which only the first replica of the chief contributes its own.
    Run by all workers together after the chief restored a checkpoint."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    strategy = tf.distribute.get_strategy()
    variables = tf1.global_variables()

    @tf.autograph.experimental.do_not_convert
    def replica_fn():
        context = tf.distribute.get_replica_context()
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float64)
        values = [tf.cast(tf.convert_to_tensor(v), tf.float64) * first for v in variables]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

    with tf.name_scope('sync_from_chief/'):
        summed = strategy.extended.call_for_each_replica(replica_fn)
        assigns = []
        for variable, value in zip(variables, summed):
            for component, local in zip(strategy.experimental_local_results(variable),
                                        strategy.experimental_local_results(value)):
                assigns.append(tf1.assign(component, tf.cast(local, variable.dtype.base_dtype)))
        return tf.group(assigns, name='sync')


def shard_pipeline(pipeline, setup):
    """This worker's share of ``pipeline`` (built with the global batch of
    the worker's replicas): with several workers, every num_workers-th batch
    from the worker's index, and steps_per_epoch divided accordingly (each
    worker still decodes every batch: simple and exact, at a cost of CPU).
    The toy GAN's sampler gets a generator of its own per worker instead."""
    if not setup.multi_worker:
        return pipeline
    import math

    import tensorflow as tf

    if hasattr(pipeline, 'dataset'):
        batch = tf.compat.v1.data.make_one_shot_iterator(
            pipeline.dataset.shard(setup.num_workers, setup.worker)).get_next()
        pipeline.next_batch = {key: batch[key] for key in pipeline.next_batch}
    else:
        pipeline.rng = np.random.default_rng([pipeline.cfg.seed, setup.worker])
    pipeline.steps_per_epoch = math.ceil(pipeline.steps_per_epoch / setup.num_workers)
    return pipeline


def scratch_config(cfg):
    """``cfg`` with runs_dir a temporary folder, removed at exit: where a
    worker other than the chief writes what the loop writes."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix='train-worker-')
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return cfg.replace(runs_dir=folder)


class WorkerCheckpoints(runtime.Checkpoints):
    """The checkpoints of a worker other than the chief: it restores
    nothing of its own (it takes the chief's variables) and saves nothing."""

    writes = False

    def save(self, sess, net, step, epoch_start):
        self.last_step = step
        return None


def restore_workers(sess, net, init_op, setup, checkpoints, steps_per_epoch):
    """Checkpoints.restore for a worker of several: every worker runs the
    initializers together (their initial values are the chief's,
    broadcast), the chief then restores its latest checkpoint, and every
    worker takes the chief's variables. Returns Checkpoints.restore's tuple;
    a worker other than the chief has no path and no host state."""
    sess.run(init_op)
    step, epoch, epoch_start, path, host = checkpoints.restore(sess, net, [], steps_per_epoch)
    sess.run(setup.sync_op)
    if not setup.is_chief:
        step, epoch = (int(v) for v in sess.run([net.global_step, net.epoch]))
        epoch_start, path, host = min(step, epoch * steps_per_epoch), None, False
        checkpoints.last_step = step
    return step, epoch, epoch_start, path, host


def worker_failure(error, cfg):
    """One line for an error that means another worker is gone (a collective
    that timed out or lost its peer) in a multi-worker run; None for any
    other error."""
    if cluster_from_env() is None:
        return None
    import tensorflow as tf

    lost = (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
            tf.errors.AbortedError, tf.errors.CancelledError, tf.errors.InternalError)
    if not isinstance(error, lost):
        return None
    first = str(error.message if hasattr(error, 'message') else error).strip().splitlines()
    return (f'a worker stopped answering: no step completed within --worker_timeout '
            f'{cfg.worker_timeout} s ({type(error).__name__}: '
            f'{(first[0] if first else "")[:120]}); the chief keeps its last checkpoint')
