"""Data parallelism and loss scaling of a model, in the graph: they wrap a
one-device model.Model from outside.

``--num_replicas N`` (and TF_CONFIG's workers, running/cluster.py) train N
replicas of the model in step with a tf.distribute strategy. :class:`Replicated`
builds the model once per replica, each on its slice of the batch, and is
what the training loop drives in its place:

- the replicas share one :class:`model.Schedule` (global step, epoch,
  learning rate) and one :class:`ScaledOptimizers` (one optimizer per
  network). Their variables are mirrored (one copy per device, one entry per
  variable in a checkpoint, as a single device's, so sample.py and a
  single-device run read them). Each update all-reduces the gradients
  (TensorFlow's v1 optimizer sums them in its cross-replica merge; each
  replica's loss is divided by the replica count, so the sum is the mean:
  with equal slices, one device's gradient of the global batch). The losses
  shown are the mean over replicas.
- Instance norm (CycleGAN) normalizes each image alone, so two replicas
  with one image each compute exactly what one device does with two.
  Batch norm (pix2pix) normalizes over each replica's slice, as the
  official DistributedDataParallel without SyncBatchNorm; each replica
  updates the moving averages of its own device's copy, and a checkpoint
  holds replica 0's, as DDP's broadcast buffers are rank 0's.
- Host state (CycleGAN's image pools) is per replica: replica r keeps its
  own pools, seeded by its ``host_seed`` (cfg.seed, r), saved with replica
  r's keys (replica 0's as a single device's, the others' prefixed
  ``replica_<r>/``); a resume with another replica count regroups the saved
  states (Model.regroup_host_states).

--amp on a GPU: each gradient computation of the model (one per group of
networks sharing a loss) has a dynamic loss scale (:func:`dynamic_loss_scale`,
TensorFlow's own): the loss is multiplied by it and the gradients divided by
it; a step whose gradients are not finite on any replica is skipped on
every replica and halves the scale (:func:`apply_if_finite`). The scales are
saved in the checkpoints but a checkpoint may lack them
(OPTIONAL_VARIABLES, running/checkpoints.PartialRestore).
"""


import numpy as np
import tensorflow as tf

from cyclegan_tf import model, registry
from cyclegan_tf.running.checkpoints import OPTIONAL_VARIABLES

tf1 = tf.compat.v1

REPLICA_PREFIX = 'replica_{}/'  # host-state keys of replica r > 0


def create(cfg, setup):
    """Builds the model of ``cfg`` (its class in registry.py) into the default
    graph as ``setup`` (cluster.Setup) trains it: one device, or a
    :class:`Replicated` in its strategy's scope; with loss scaling where
    --amp applies."""
    model_class = registry.of(cfg).model_class
    loss_scaling = setup.mixed_precision(cfg)
    if setup.distributed:
        with setup.strategy.scope():
            return Replicated(model_class, cfg, setup.strategy, loss_scaling=loss_scaling)
    if not loss_scaling:
        return model_class(cfg)
    schedule = model.Schedule(cfg)
    return model_class(cfg, schedule=schedule, optimizers=ScaledOptimizers(
        schedule.learning_rate, cfg.beta1, loss_scaling=True))


class Replicated:
    """A model trained on every local replica of the current strategy,
    driven by the training loop as one model: ``losses`` (the mean over all
    replicas), ``visuals`` (the local replicas' concatenated on the batch),
    ``train_op`` (every local replica's), ``summary_op``, :meth:`train_step`,
    :meth:`host_state`; anything else is the first local replica's model
    (``towers[0]``: its networks, inputs, schedule, epoch report)."""

    def __init__(self, model_class, cfg, strategy, *, loss_scaling=False):
        self.model_class, self.cfg = model_class, cfg
        schedule = model.Schedule(cfg)
        optimizers = ScaledOptimizers(schedule.learning_rate, cfg.beta1,
                                      loss_scaling=loss_scaling)
        towers = {}

        @tf.autograph.experimental.do_not_convert  # graph code as written, not converted
        def replica_fn():
            context = tf.distribute.get_replica_context()
            r = int(tf.get_static_value(context.replica_id_in_sync_group))
            towers[r] = model_class(cfg, schedule=schedule, optimizers=optimizers,
                                    host_seed=(cfg.seed, r) if r else None)
            return towers[r].losses, towers[r].visuals, towers[r].train_op

        losses, visuals, train_ops = strategy.extended.call_for_each_replica(replica_fn)
        self.towers = [towers[r] for r in sorted(towers)]
        self.replica_ids = sorted(towers)
        self.num_replicas = strategy.num_replicas_in_sync
        with tf.name_scope('replicas/'):
            self.losses = {name: tf.identity(strategy.reduce(tf.distribute.ReduceOp.MEAN, loss,
                                                             axis=None), name=name)
                           for name, loss in losses.items()}
            self.visuals = {name: tf.concat(strategy.experimental_local_results(images), 0,
                                            name=name)
                            for name, images in visuals.items()}
            self.train_op = tf.group(strategy.experimental_local_results(train_ops),
                                     name='train_op')
        mean_losses = {f'loss/{name}': loss for name, loss in self.losses.items()}
        self.summary_op = model.scalar_summary({**self.towers[0].scalars(), **mean_losses})

    def __getattr__(self, name):
        if name == 'towers':  # not built yet: no recursion
            raise AttributeError(name)
        return getattr(self.towers[0], name)

    def feed_dict(self, batch):
        return feed_dict(self.towers, batch)

    train_step = model.Model.train_step  # the same step, with this feed_dict

    def host_state(self):
        """Every local replica's host state, in one dict (:func:`gather_host_states`)."""
        return gather_host_states({r: tower.host_state()
                                   for r, tower in zip(self.replica_ids, self.towers)})

    def load_host_state(self, state):
        """Restores what :meth:`host_state` returned, saved with any replica
        count: regrouped to this one's (Model.regroup_host_states)."""
        states = self.model_class.regroup_host_states(split_host_states(state),
                                                      self.num_replicas)
        for r, tower in zip(self.replica_ids, self.towers):
            tower.load_host_state(states[r])


class ScaledOptimizers(model.Optimizers):
    """model.Optimizers for replicas and loss scaling: each replica's loss is
    divided by the replica count (the optimizers sum the replicas'
    gradients); with ``loss_scaling`` each group of networks gets a dynamic
    loss scale (:func:`dynamic_loss_scale`, ``scales``), its gradients are
    computed on the scaled loss and unscaled (:func:`scaled_gradients`), and
    applied only when finite on every replica (:func:`apply_if_finite`)."""

    def __init__(self, learning_rate, beta1, *, loss_scaling=False):
        super().__init__(learning_rate, beta1)
        self.loss_scaling, self.scales = loss_scaling, {}

    def gradients(self, loss, variables, group):
        return scaled_gradients(replica_share(loss), variables, self._scale(group),
                                name='gradients_' + group)

    def apply(self, updates, dependencies, group):
        scale = self._scale(group)
        if scale is None:
            return super().apply(updates, dependencies, group)
        grads = [g for _, pairs in updates for g, _ in pairs]

        def apply(grads, dependencies):  # in each replica, with the merged gradients
            start, regrouped = 0, []
            for name, pairs in updates:
                regrouped.append((name, [(g, v) for g, (_, v) in
                                         zip(grads[start:start + len(pairs)], pairs)]))
                start += len(pairs)
            return super(ScaledOptimizers, self).apply(regrouped, dependencies, group)

        return apply_if_finite(scale, apply, grads, dependencies)

    def _scale(self, group):
        """The loss scale of the networks ``group``, created once (the
        replicas share it); None without loss scaling."""
        if not self.loss_scaling:
            return None
        if group not in self.scales:
            with tf.name_scope(f'optimizers/loss_scale_{group}/'):  # any replica's
                self.scales[group] = dynamic_loss_scale()
        return self.scales[group]


def replica_share(loss):
    """``loss`` divided by the number of replicas in sync, inside a replica
    of a strategy (the optimizers sum the replicas' gradients); ``loss``
    itself on one device."""
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    return loss if replicas == 1 else tf.math.divide(loss, float(replicas),
                                                     name='per_replica_share')


# ------------------------------------------------------ mixed precision


def dynamic_loss_scale():
    """TensorFlow's v1 dynamic loss scale, as its graph-rewrite mixed
    precision optimizer uses it: 2^15 at first, halved at every step whose
    gradients overflow (that step is skipped), doubled after 2000 steps
    without an overflow. Its two variables are in the collection
    OPTIONAL_VARIABLES."""
    before = {id(v) for v in tf1.global_variables()}
    scale = tf1.mixed_precision.DynamicLossScale()
    for variable in tf1.global_variables():
        if id(variable) not in before:
            tf1.add_to_collection(OPTIONAL_VARIABLES, variable)
    return scale


def scaled_gradients(loss, variables, scale, *, name):
    """The gradients of ``loss`` with respect to ``variables``; with a loss
    ``scale`` (dynamic_loss_scale), computed on loss x scale and divided by
    it (a power of two: exact where nothing overflows)."""
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
    def merge(strategy, grads, dependencies):
        update_scale, finite = scale.update(grads)

        def updates():
            return strategy.group(strategy.extended.call_for_each_replica(
                apply, args=(grads, dependencies)))

        with tf.name_scope('apply_if_finite/'):
            return tf.group(tf.cond(finite, updates, tf.no_op), update_scale)

    return tf.distribute.get_replica_context().merge_call(merge, args=(grads, dependencies))


# ------------------------------------------------------- batches and state


def feed_dict(towers, batch):
    """The feed of one step: the i-th of the local ``towers`` (models) gets
    the i-th of equal slices of each array of the global ``batch``. A batch
    smaller than the replica count (the last of an epoch) is first repeated
    up to it, so no replica gets an empty slice; with a batch that does not
    divide evenly, the slices differ by one example."""
    feed = {}
    n = len(towers)
    for key in towers[0].inputs:
        array = batch[key]
        if len(array) < n:
            array = np.concatenate([array] * (n // len(array) + 1))[:n]
        for tower, part in zip(towers, np.array_split(array, n)):
            feed[tower.inputs[key]] = part
    return feed


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
