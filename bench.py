"""Times training iterations and batched inference on synthetic inputs.

    python bench.py --crop_size 256 --ngf 64 --ndf 64 --netG resnet_9blocks --iters 5

Builds the model of the flags (every flag of train.py applies; --model
default cycle_gan) with the session settings of train.py, feeds random
images (no input pipeline, no disk), runs --warmup untimed iterations, then
times --iters iterations and reports the median. Prints one JSON object:

- train_s_per_iter, train_images_per_s (examples, an A and a B image, per
  second: batch_size / train_s_per_iter);
- infer_s_per_batch, infer_images_per_s: the A -> B generator alone on
  batches of --infer_batch_size;
- train_gflop_per_iter, infer_gflop_per_image, and the achieved
  train_gflop_per_s and infer_gflop_per_s: floating-point operations of the
  convolutions and matrix products the session runs (2 per multiply-add;
  the other ops, a few percent, are not counted), read from the graph;
- generator_forwards_per_iter: train FLOPs / one generator forward's.
"""

import concurrent.futures
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # see train.py

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

import config  # noqa: E402
import runs  # noqa: E402
import train  # noqa: E402

CONV_OPS = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter')


def parse(argv):
    """(model config, BenchConfig) of the command line ``argv``."""
    flag_values = config.define_flags(flags.FlagValues())
    config.define_flags(flag_values, settings=config.BenchConfig)
    config.parse_argv(flag_values, argv)
    bench = config.settings_from_flags(config.BenchConfig, flag_values)
    return config.from_flags(flag_values), bench


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


def flops(ops, batch_size):
    """Floating-point operations of the convolutions and matrix products in
    ``ops`` for a batch of ``batch_size`` (a None batch dimension)."""
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
        elif op.type == 'MatMul':
            a, b = (t.shape.as_list() for t in op.inputs[:2])
            rows = a[1] if op.get_attr('transpose_a') else a[0]
            inner = a[0] if op.get_attr('transpose_a') else a[1]
            cols = b[0] if op.get_attr('transpose_b') else b[1]
            total += 2 * (rows or batch_size) * inner * cols
    return total


def median_time(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_images(rng, placeholder, batch_size, size):
    """Uniform noise in [-1, 1] for an image placeholder [None, H, W, C]."""
    shape = [batch_size, size, size, placeholder.shape[-1]]
    return rng.uniform(-1, 1, shape).astype(np.float32)


def isolated(fn, *args):
    """fn(*args) in a fresh process: TensorFlow sizes its CPU thread pools
    once per process, from the first session's settings, and training and
    inference use different ones (see train.session_config)."""
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def _setup_tensorflow(cfg):
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    tf.get_logger().setLevel('ERROR')
    return np.random.default_rng(cfg.seed)


def bench_train(cfg, bench):
    """(seconds per iteration, FLOPs per iteration, FLOPs of one generator forward)."""
    import tensorflow as tf

    import model as models

    rng = _setup_tensorflow(cfg)
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        net = models.create(cfg)
        init_op = tf1.global_variables_initializer()
    graph.finalize()
    batch = {key: random_images(rng, placeholder, cfg.batch_size, cfg.crop_size)
             for key, placeholder in net.inputs.items()}
    with tf1.Session(graph=graph, config=train.session_config()) as sess:
        sess.run(init_op)
        seconds = median_time(lambda: net.train_step(sess, batch), bench.warmup, bench.iters)
    work = flops(executed_ops([net.train_op] + list(net.losses.values())), cfg.batch_size)
    # One generator forward, counted here where the sizes are static (the
    # inference graph takes any size).
    fake_B = next(v for k, v in net.visuals.items() if k.startswith('fake_B'))
    return seconds, work, flops(executed_ops([fake_B]), 1)


def bench_infer(cfg, bench):
    """Seconds per batch of the A -> B generator."""
    import tensorflow as tf

    import model as models

    rng = _setup_tensorflow(cfg)
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        inputs, outputs = models.MODELS[cfg.model].build_inference(cfg)
        init_op = tf1.global_variables_initializer()
    graph.finalize()
    feed = {inputs['A']: random_images(rng, inputs['A'], bench.infer_batch_size, cfg.crop_size)}
    with tf1.Session(graph=graph, config=train.session_config(training=False)) as sess:
        sess.run(init_op)
        return median_time(lambda: sess.run(outputs['fake_B'], feed), bench.warmup, bench.iters)


def run(cfg, bench):
    """The benchmark's results, a dict (see the module docstring)."""
    import tensorflow as tf

    train_s, train_flop, infer_flop = isolated(bench_train, cfg, bench)
    infer_s = isolated(bench_infer, cfg, bench)
    return {
        'model': cfg.model, 'netG': cfg.netG, 'netD': cfg.netD, 'crop_size': cfg.crop_size,
        'ngf': cfg.ngf, 'ndf': cfg.ndf, 'batch_size': cfg.batch_size,
        'iters': bench.iters, 'warmup': bench.warmup,
        'train_s_per_iter': round(train_s, 4),
        'train_images_per_s': round(cfg.batch_size / train_s, 3),
        'train_gflop_per_iter': round(train_flop / 1e9, 2),
        'train_gflop_per_s': round(train_flop / 1e9 / train_s, 1),
        'infer_batch_size': bench.infer_batch_size,
        'infer_s_per_batch': round(infer_s, 4),
        'infer_images_per_s': round(bench.infer_batch_size / infer_s, 2),
        'infer_gflop_per_image': round(infer_flop / 1e9, 3),
        'infer_gflop_per_s': round(infer_flop * bench.infer_batch_size / 1e9 / infer_s, 1),
        'generator_forwards_per_iter': round(train_flop / cfg.batch_size / infer_flop, 1),
        'device': 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
        'cpus': os.cpu_count(), 'tensorflow': tf.__version__, 'python': platform.python_version(),
    }


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if any(arg in train.HELP_FLAGS for arg in argv[1:]):
        print(__doc__)
        return 0
    try:
        cfg, bench = parse(argv)
        if not isinstance(cfg, config.ImageConfig):
            raise config.ConfigError(f'bench.py times the image models, not {cfg.model}')
        if bench.iters < 1 or bench.warmup < 0 or bench.infer_batch_size < 1:
            raise config.ConfigError('--iters and --infer_batch_size must be >= 1, --warmup >= 0')
        print(json.dumps(run(cfg, bench)))
        return 0
    except train.USER_ERRORS + (ValueError,) as e:  # ValueError: a network's shape constraint
        print(f'bench.py: error: {runs.one_line(e)}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
