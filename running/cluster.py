"""The processes of data-parallel and multi-worker training: which strategy
this process trains with, its session, and the other workers.

``--num_replicas N`` trains N replicas of the model in step on one machine
with ``tf.distribute.MirroredStrategy``: GPUs 0..N-1, or, without GPUs, N
logical CPU devices (how it is tested). The standard ``TF_CONFIG``
environment variable (a cluster of workers, this task's type and index)
selects ``MultiWorkerMirroredStrategy``: collective all-reduce over gRPC, in
graph mode with a ``tf.distribute.Server`` per worker and the session on its
target; every worker runs the same train.py command, worker 0 is the chief.
What the replicas compute, and how the model is replicated, is the graph's
side (replicas.py).

- ``--batch_size`` is per replica; the global batch is num_replicas x
  batch_size (x workers). Each worker reads the global batches of its
  replicas from its input pipeline (:func:`shard_pipeline`) and feeds each
  replica its slice; with W workers, worker i takes batches i, i + W, ...
- Only the chief writes the run folder (checkpoints, summaries, samples,
  config.json); the others write into a temporary folder they remove
  (:func:`scratch_config`). On a resume the chief restores the checkpoint
  and every worker then takes the chief's variables (:func:`sync_from_chief`):
  the others need no access to the run folder. Their image pools start
  empty. With --eval_freq the chief scores its checkpoints alone; the others
  wait for it at the next step (within --worker_timeout).
- --amp on a GPU: TensorFlow's auto_mixed_precision graph rewrite
  (:func:`session_config`) and the model's loss scaling (replicas.py).
- A dead worker: a step that waits on the others longer than
  ``--worker_timeout`` seconds fails (the session's operation timeout);
  train.py stops with one line and exit status 1 (:func:`worker_failure`).

This module imports TensorFlow only inside its functions.
"""

import json
import os

import numpy as np

from cyclegan_tf import config
from cyclegan_tf.running import checkpoints, session


class ClusterError(config.ConfigError):
    """A bad TF_CONFIG or replica setting: one line, exit status 2."""


# The most logical CPU devices --num_replicas makes without GPUs. They share
# the machine's cores (slower than one replica, see the README): they are
# for testing data parallelism, where 2-8 do. Beyond some thousands
# TensorFlow's device setup does not end (100,000 hung), so a bound is
# stated rather than left to it.
MAX_CPU_REPLICAS = 64


def cluster_from_env(environ=None):
    """(workers, task index) of ``TF_CONFIG``: the workers' addresses, the
    chief first (a 'chief' job comes before the 'worker' job), and this
    task's index among them; None without TF_CONFIG or with one worker only.
    ClusterError, one line naming the field, for a malformed one."""
    text = (os.environ if environ is None else environ).get('TF_CONFIG', '').strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ClusterError(f'TF_CONFIG is not JSON ({type(e).__name__}: '
                           f'{str(e)[:100]})') from None
    cluster, task = _field(spec, 'cluster', dict), _field(spec, 'task', dict)
    others = sorted(map(str, set(cluster) - {'chief', 'worker'}))
    if others:
        raise ClusterError(f'TF_CONFIG: train.py runs workers (and a chief) only, not '
                           f'{_short(", ".join(others))}')
    workers = _addresses(cluster, 'chief') + _addresses(cluster, 'worker')
    kind, index = _field(task, 'type', str, 'task.'), _field(task, 'index', int, 'task.')
    if kind not in ('chief', 'worker'):
        raise ClusterError(f'TF_CONFIG: task.type must be chief or worker, got {_short(kind)!r}')
    jobs = len(cluster.get(kind, []))
    if not 0 <= index < jobs or (kind == 'chief' and index != 0):
        raise ClusterError(f'TF_CONFIG: task.index {index} is not in the cluster: cluster.{kind} '
                           f'has {jobs} address(es)')
    position = index + (len(cluster.get('chief', [])) if kind == 'worker' else 0)
    return (workers, position) if len(workers) > 1 else None


def _short(text, limit=40):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit] + '...'


def _field(mapping, name, kind, where=''):
    """``mapping[name]``, which must be a ``kind`` (an int is not a bool)."""
    if not isinstance(mapping, dict):
        raise ClusterError(f'TF_CONFIG must be a JSON object, got {type(mapping).__name__}')
    if name not in mapping:
        raise ClusterError(f'TF_CONFIG: {where}{name} is missing')
    value = mapping[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ClusterError(f'TF_CONFIG: {where}{name} must be a {_KINDS[kind]}, got '
                           f'{type(value).__name__} {_short(json.dumps(value))}')
    return value


_KINDS = {dict: 'JSON object', str: 'string', int: 'whole number', list: 'list'}


def _addresses(cluster, job):
    """The addresses of ``job`` in ``cluster``: a list of distinct "host:port" strings."""
    if job not in cluster:
        return []
    addresses = _field(cluster, job, list, 'cluster.')
    for i, address in enumerate(addresses):
        host, _, port = address.rpartition(':') if isinstance(address, str) else ('', '', '')
        if not host or not port.isdigit():
            raise ClusterError(f'TF_CONFIG: cluster.{job}[{i}] must be a "host:port" string, '
                               f'got {_short(json.dumps(address))}')
        if address in addresses[:i]:
            raise ClusterError(f'TF_CONFIG: cluster.{job}[{i}] repeats {_short(address)}')
    return list(addresses)


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
    tf = session.graph_mode()  # first: in eager mode the strategy would start its own server

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
        _cpu_devices(tf, n)
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


def _cpu_devices(tf, n):
    """Makes ``n`` (2 to MAX_CPU_REPLICAS) logical CPU devices."""
    if n > MAX_CPU_REPLICAS:
        raise ClusterError(f'--num_replicas {n}: without GPUs the replicas are logical CPU '
                           f'devices, at most {MAX_CPU_REPLICAS} (this machine has no GPU)')
    cpu = tf.config.list_physical_devices('CPU')[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # TensorFlow's devices are set already (a test's process)
        if len(tf.config.list_logical_devices('CPU')) != n:
            raise ClusterError(f'--num_replicas {n}: TensorFlow already set up its CPU '
                               f'devices in this process; run train.py in a fresh '
                               f'process') from None


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
    wait_for_workers(workers, index, cfg.worker_timeout)
    return Setup(strategy, local_replicas=local, num_workers=len(workers), worker=index,
                 target=server.target, server=server, gpu=gpu,
                 devices=f'worker {index} of {len(workers)} ({workers[index]}), '
                         f'{local} {kind} replica(s) each')


def wait_for_workers(workers, index, timeout):
    """Returns once every worker but ``index`` accepts a connection on its
    address; ClusterError naming the first that does not within ``timeout``
    seconds. (TensorFlow's session would wait for them forever: the
    operation timeout only starts once the graph is on every worker.)"""
    import socket
    import time

    deadline = time.monotonic() + timeout
    waiting = [(i, address) for i, address in enumerate(workers) if i != index]
    told = False
    while waiting:
        i, address = waiting[0]
        host, _, port = address.rpartition(':')
        try:
            with socket.create_connection((host.strip('[]'), int(port)),
                                          timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
                waiting.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ClusterError(f'worker {i} ({address}) did not answer within --worker_timeout '
                               f'{timeout} s: start it (the same command with its TF_CONFIG '
                               f'task) or raise --worker_timeout')
        if not told:
            print(f'  waiting up to {timeout} s for worker {i} ({address}) ...', flush=True)
            told = True
        time.sleep(0.2)


def session_config(cfg, setup, *, base):
    """``base`` (session.session_config's proto) with the settings of the
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


class WorkerCheckpoints(checkpoints.Checkpoints):
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
