"""cyclegan_tf: CycleGAN, pix2pix and a toy GAN as TensorFlow 1.x-style graph code.

The repository's root is this package (``pip install -e .`` in a checkout,
``pip install .`` elsewhere). Its layout, from the bottom up; a module
imports only from the layers below it:

    config.py       the settings of every model and tool (a leaf)
    data/           datasets by name or folder, their layouts, the tf.data pipeline
    ops.py          layers as small functions of tensors
    modules.py      networks built once and reused: generators, discriminators
    model.py        the abstract Model (one device) and what models share
    models/         one file per model: CycleGAN, pix2pix and colorization, the toy GAN
    registry.py     the models by name: config class, Model class, data; every
                    model's flags
    running/        running the commands: sessions, checkpoints, run folders,
                    replicas and loss scaling (graph side), clusters (process side)
    evaluation/     FID's Inception, metrics, translating a test split, sample grids
    interop/        PyTorch .pth files and the official weights; SavedModel,
                    frozen graph, TFLite and ONNX exports
    inference.py    the Python API: Translator
    train.py sample.py evaluate.py export.py bench.py import_torch.py demo.py
                    the commands (``python train.py``, or installed ``cyclegan-train``)

Importing the package imports nothing else: ``from cyclegan_tf.inference
import Translator`` loads what the translator needs.
"""

__version__ = '0.1.0'
