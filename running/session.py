"""TensorFlow's set-up for the commands: its log level, the GPUs it may
use, graph mode, and the session settings of training and inference.

This module imports TensorFlow only inside its functions: a script checks
its command line and prints its first line before paying TensorFlow's import.
"""

import os
import sys

from cyclegan_tf import config


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
