"""Times training iterations and batched inference on synthetic inputs.

    python bench.py --crop_size 256 --ngf 64 --ndf 64 --netG resnet_9blocks --iters 5

Builds the model of the flags (every flag of train.py applies; --model
default cycle_gan) with the session settings of train.py, feeds random
images (no input pipeline, no disk), runs --warmup untimed iterations, then
times --iters iterations and reports the median. Prints one JSON object:

- train_s_per_iter (the median), train_s_per_iter_each (every timed
  iteration's), train_peak_memory_mib (the peak resident memory of the
  process that trained: TensorFlow, graph, weights, activations),
  train_images_per_s (examples, an A and a B image, per
  second: global_batch_size / train_s_per_iter); with --num_replicas N the
  model trains data parallel as in train.py (N GPUs, else N logical CPU
  devices) on a global batch of N x batch_size, and --amp and --xla apply
  as in train.py (on a GPU only);
- infer_s_per_batch, infer_images_per_s: the A -> B generator alone on
  batches of --infer_batch_size;
- train_gflop_per_iter, infer_gflop_per_image, and the achieved
  train_gflop_per_s and infer_gflop_per_s: floating-point operations of the
  convolutions and matrix products the session runs (2 per multiply-add;
  the other ops, a few percent, are not counted), read from the graph;
- generator_forwards_per_iter: train FLOPs / one generator forward's;
- fid_features_images_per_s, fid_features_s_per_1000_images: FID feature
  extraction (inception.py, random weights of the real network) on
  --feature_images images of 256 px (0: skipped).

With --compare_pipeline it also times train.py's loop (fetch a batch, run
one training step) fed by the input pipeline on --dataset (downloaded or
generated first if needed) against the same loop fed by the pipeline's first
batches held in memory (no disk, no decoding). Both run in one session of a
fresh process, in blocks of --iters iterations after --warmup untimed ones
each: --rounds pairs of blocks, pipeline then memory, then memory then
pipeline, and so on. The one session keeps differences between processes
out of the comparison, and many short blocks the drift of the machine's
speed (on the 2-core development machine, blocks of the same kind differ by
several percent). While a memory block runs, the pipeline only refills the
buffers the previous block drew from (a few examples), then waits. Adds:

- pipeline_s_per_iter, in_memory_s_per_iter: the mean over blocks of each
  block's mean time per iteration (a mean, not a median: the pipeline's cost
  can come as occasional stalls);
- pipeline_slowdown_percent: 100 * (pipeline / in memory - 1);
- pipeline_slowdown_stderr_percent: its standard error, from the ratios of
  the two blocks of each round (null with --rounds 1);
- pipeline_blocks_s_per_iter, in_memory_blocks_s_per_iter: each block's, to
  judge the noise;
- pipeline_cpu_ms_per_example: CPU time the pipeline alone spends per
  example, all threads (pipeline.pipeline_throughput).
"""

import concurrent.futures
import itertools
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time

import numpy as np
from absl import flags

from cyclegan_tf import config, registry
from cyclegan_tf.data import datasets
from cyclegan_tf.running import cluster, commands, runs, session

CONV_OPS = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter')


def parse(argv):
    """(model config, BenchConfig) of the command line ``argv``."""
    flag_values = registry.define_flags(flags.FlagValues())
    config.define_flags(flag_values, config.BenchConfig.options())
    config.parse_argv(flag_values, argv)
    bench = config.settings_from_flags(config.BenchConfig, flag_values)
    return registry.from_flags(flag_values), bench


def executed_ops(fetches):
    """The ops a session runs to compute ``fetches`` (tensors or ops)."""
    stack = [getattr(f, 'op', f) for f in fetches]
    seen = set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


MATMUL_OPS = ('MatMul', 'BatchMatMulV2')


def operand_shapes(ops):
    """{name: tf.shape} of the matrix products' operands in ``ops`` whose
    static shape is not fully known (the patch count of CUT's F, for one),
    for a session run to resolve for :func:`flops`."""
    import tensorflow as tf

    return {t.name: tf.shape(t) for op in ops if op.type in MATMUL_OPS
            for t in op.inputs[:2] if not t.shape.is_fully_defined()}


def flops(ops, batch_size, shapes=None):
    """Floating-point operations of the convolutions and matrix products in
    ``ops`` for a batch of ``batch_size`` (a None batch dimension); ``shapes``:
    the run-time shapes of operands that are not static (operand_shapes)."""
    def dims(tensor):
        known = (shapes or {}).get(tensor.name)
        return [int(d) for d in known] if known is not None else tensor.shape.as_list()

    total = 0
    for op in ops:
        if op.type in CONV_OPS:
            # Every kind costs 2 * (output pixels) * (filter size) * (input
            # channels) * (output channels); out_backprop has the forward's
            # output shape, the filter is an input or (filter grad) the output.
            out = op.outputs[0] if op.type == 'Conv2D' else op.inputs[2]
            kernel = op.outputs[0] if op.type == 'Conv2DBackpropFilter' else op.inputs[1]
            _, height, width, _ = out.shape.as_list()
            total += 2 * height * width * int(np.prod(kernel.shape.as_list())) * batch_size
        elif op.type in MATMUL_OPS:
            a, b = dims(op.inputs[0]), dims(op.inputs[1])
            flip_a, flip_b = (('transpose_a', 'transpose_b') if op.type == 'MatMul'
                              else ('adj_x', 'adj_y'))
            rows, inner = (a[-1], a[-2]) if op.get_attr(flip_a) else (a[-2], a[-1])
            cols = b[-2] if op.get_attr(flip_b) else b[-1]
            stacked = int(np.prod([d or batch_size for d in a[:-2]]))
            total += 2 * stacked * (rows or batch_size) * inner * cols
    return total


def timings(fn, warmup, iters):
    """The seconds of each of ``iters`` calls of ``fn``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn, warmup, iters):
    return statistics.median(timings(fn, warmup, iters))


def peak_memory_mib():
    """The peak resident memory of this process so far, in MiB (Linux: ru_maxrss is KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def random_images(rng, placeholder, batch_size, size):
    """Uniform noise in [-1, 1] for an image placeholder [None, H, W, C]."""
    shape = [batch_size, size, size, placeholder.shape[-1]]
    return rng.uniform(-1, 1, shape).astype(np.float32)


def isolated(fn, *args):
    """fn(*args) in a fresh process: TensorFlow sizes its CPU thread pools
    once per process, from the first session's settings, and training and
    inference use different ones (see session.session_config)."""
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def _setup_tensorflow(cfg):
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    tf.get_logger().setLevel('ERROR')
    return np.random.default_rng(cfg.seed)


def bench_train(cfg, bench):
    """(seconds of each timed iteration, FLOPs per iteration, FLOPs of one
    generator forward, peak resident memory of the process in MiB)."""
    import tensorflow as tf

    from cyclegan_tf.running import replicas

    setup = cluster.configure(cfg)  # before TensorFlow sets up its devices
    rng = _setup_tensorflow(cfg)
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        net = replicas.create(cfg, setup)
        init_op = tf1.global_variables_initializer()
        counted = executed_ops([net.train_op] + list(net.losses.values()))
        unknown = operand_shapes(counted)
    graph.finalize()
    batch = {key: random_images(rng, placeholder, cfg.batch_size * setup.local_replicas,
                                cfg.crop_size)
             for key, placeholder in net.inputs.items()}
    proto = cluster.session_config(cfg, setup, base=session.session_config())
    with tf1.Session(setup.target, graph=graph, config=proto) as sess:
        sess.run(init_op)
        seconds = timings(lambda: net.train_step(sess, batch), bench.warmup, bench.iters)
        shapes = sess.run(unknown, net.feed_dict(batch)) if unknown else {}
    memory = peak_memory_mib()
    # Every replica's convolutions, each on batch_size examples.
    work = flops(counted, cfg.batch_size, shapes)
    # One generator forward, counted here where the sizes are static (the
    # inference graph takes any size).
    visuals = net.towers[0].visuals if hasattr(net, 'towers') else net.visuals
    fake_B = next(v for k, v in visuals.items() if k.startswith('fake_B'))
    return seconds, work, flops(executed_ops([fake_B]), 1), memory


def bench_infer(cfg, bench):
    """Seconds per batch of the A -> B generator."""
    import tensorflow as tf

    rng = _setup_tensorflow(cfg)
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        inputs, outputs = registry.of(cfg).model_class.build_inference(cfg)
        init_op = tf1.global_variables_initializer()
    graph.finalize()
    feed = {inputs['A']: random_images(rng, inputs['A'], bench.infer_batch_size, cfg.crop_size)}
    setup = cluster.Setup(gpu=bool(tf.config.list_physical_devices('GPU')))  # --amp, --xla
    proto = cluster.session_config(cfg, setup, base=session.session_config(training=False))
    with tf1.Session(graph=graph, config=proto) as sess:
        sess.run(init_op)
        return median_time(lambda: sess.run(outputs['fake_B'], feed), bench.warmup, bench.iters)


PIPELINE, MEMORY = 'pipeline', 'memory'
HELD_BATCHES = 8  # batches of the pipeline held in memory for the in-memory blocks


def block_order(rounds):
    """The sources of the timed blocks of --compare_pipeline: pipeline then
    memory, then memory then pipeline, and so on, so that a drift in speed
    over the run weighs on both alike."""
    return [source for r in range(rounds)
            for source in ((PIPELINE, MEMORY) if r % 2 == 0 else (MEMORY, PIPELINE))]


def time_feeds(cfg, bench, root):
    """{'pipeline': [...], 'memory': [...]}: the mean seconds per iteration of
    each timed block of train.py's loop (fetch a batch, run a training step)
    on the dataset folder ``root``, fed by the input pipeline or by its first
    HELD_BATCHES batches held in memory, in one session (see the module
    docstring)."""
    import tensorflow as tf

    from cyclegan_tf.data import pipeline

    _setup_tensorflow(cfg)
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        reader = pipeline.input_pipeline(cfg, root=root, layout=registry.of(cfg).data)
        net = registry.create(cfg)
        init_op = tf1.global_variables_initializer()
    graph.finalize()
    with tf1.Session(graph=graph, config=session.session_config()) as sess:
        sess.run(init_op)
        held = itertools.cycle([sess.run(reader.next_batch) for _ in range(HELD_BATCHES)])
        feeds = {PIPELINE: lambda: sess.run(reader.next_batch), MEMORY: lambda: next(held)}

        def run_block(source, iters):
            start = time.perf_counter()
            for _ in range(iters):
                net.train_step(sess, feeds[source]())
            return (time.perf_counter() - start) / max(iters, 1)

        for source in feeds:
            run_block(source, bench.warmup)
        times = {source: [] for source in feeds}
        for source in block_order(bench.rounds):
            times[source].append(run_block(source, bench.iters))
        return times


def _pipeline_cpu(cfg, root):
    from cyclegan_tf.data import pipeline

    _setup_tensorflow(cfg)
    return pipeline.pipeline_throughput(cfg, root=root,
                                        layout=registry.of(cfg).data)['cpu_ms_per_example']


def compare_pipeline(cfg, bench, root):
    """The --compare_pipeline results on the dataset folder ``root`` (see the
    module docstring)."""
    times = isolated(time_feeds, cfg, bench, root)
    pipeline_s, memory_s = (statistics.mean(times[source]) for source in (PIPELINE, MEMORY))
    # The two blocks of a round ran back to back: their ratios are paired
    # samples of the slowdown, free of the slower drift of the machine's speed.
    ratios = [p / m for p, m in zip(times[PIPELINE], times[MEMORY])]
    stderr = statistics.stdev(ratios) / math.sqrt(len(ratios)) if len(ratios) > 1 else None
    return {
        'pipeline_dataset': root,
        'pipeline_s_per_iter': round(pipeline_s, 4),
        'in_memory_s_per_iter': round(memory_s, 4),
        'pipeline_slowdown_percent': round(100 * (pipeline_s / memory_s - 1), 2),
        'pipeline_slowdown_stderr_percent': None if stderr is None else round(100 * stderr, 2),
        'pipeline_blocks_s_per_iter': [round(t, 4) for t in times[PIPELINE]],
        'in_memory_blocks_s_per_iter': [round(t, 4) for t in times[MEMORY]],
        'pipeline_cpu_ms_per_example': round(isolated(_pipeline_cpu, cfg, root), 2),
    }


def bench_features(bench):
    """Images/s of FID feature extraction (inception.py) on 256 px images,
    with random weights of the real network (the same cost, no download)."""
    from cyclegan_tf.evaluation import inception

    session.graph_mode()
    with inception.FeatureExtractor(inception.random_weights(), batch_size=bench.feature_batch,
                                    progress=False) as extractor:
        return inception.throughput(extractor, num_images=bench.feature_images)


def run(cfg, bench):
    """The benchmark's results, a dict (see the module docstring)."""
    import tensorflow as tf

    # First, so that a dataset that is not there fails before minutes of timing.
    root = (datasets.prepare(cfg, 'train', layout=registry.of(cfg).data)
            if bench.compare_pipeline else None)
    train_times, train_flop, infer_flop, memory = isolated(bench_train, cfg, bench)
    train_s = statistics.median(train_times)
    infer_s = isolated(bench_infer, cfg, bench)
    results = {
        'model': cfg.model, 'netG': cfg.netG, 'netD': cfg.netD, 'crop_size': cfg.crop_size,
        'ngf': cfg.ngf, 'ndf': cfg.ndf, 'batch_size': cfg.batch_size,
        'num_replicas': cfg.num_replicas, 'global_batch_size': cfg.batch_size * cfg.num_replicas,
        'amp': cfg.amp, 'xla': cfg.xla,
        'iters': bench.iters, 'warmup': bench.warmup,
        'train_s_per_iter': round(train_s, 4),
        'train_s_per_iter_each': [round(t, 4) for t in train_times],
        'train_peak_memory_mib': round(memory, 1),
        'train_images_per_s': round(cfg.batch_size * cfg.num_replicas / train_s, 3),
        'train_gflop_per_iter': round(train_flop / 1e9, 2),
        'train_gflop_per_s': round(train_flop / 1e9 / train_s, 1),
        'infer_batch_size': bench.infer_batch_size,
        'infer_s_per_batch': round(infer_s, 4),
        'infer_images_per_s': round(bench.infer_batch_size / infer_s, 2),
        'infer_gflop_per_image': round(infer_flop / 1e9, 3),
        'infer_gflop_per_s': round(infer_flop * bench.infer_batch_size / 1e9 / infer_s, 1),
        'generator_forwards_per_iter': round(
            train_flop / (cfg.batch_size * cfg.num_replicas) / infer_flop, 1),
        'device': 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
        'cpus': os.cpu_count(), 'tensorflow': tf.__version__, 'python': platform.python_version(),
    }
    if bench.feature_images:
        features = isolated(bench_features, bench)
        results['fid_features_images_per_s'] = round(features['images_per_s'], 2)
        results['fid_features_s_per_1000_images'] = round(features['s_per_1000_images'], 1)
    if bench.compare_pipeline:
        results.update(compare_pipeline(cfg, bench, root))
    return results


def main(argv=None):
    session.quiet_tensorflow()  # before anything imports TensorFlow
    argv = sys.argv if argv is None else argv
    argv = argv[:1] + commands.resolve_flagfiles(argv[1:])
    if commands.wants_help(argv):
        print(__doc__)
        return 0
    try:
        cfg, bench = parse(argv)
        if not registry.of(cfg).images:
            raise config.ConfigError(f'bench.py times the image models, not {cfg.model}')
        if min(bench.iters, bench.infer_batch_size, bench.rounds) < 1 or bench.warmup < 0:
            raise config.ConfigError('--iters, --infer_batch_size and --rounds must be >= 1, '
                                     '--warmup >= 0')
        print(json.dumps(run(cfg, bench)))
        return 0
    except commands.USER_ERRORS + (ValueError,) as e:  # ValueError: a network's shape constraint
        print(f'bench.py: error: {runs.one_line(e)}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
