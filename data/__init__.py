"""The data layer: finding a dataset (by name, folder or the built-in set),
downloading and extracting it safely, and reading it.

    datasets.py   cfg.dataset -> its folder: known sets, your folders, the built-in one
    layouts.py    folder layouts (unaligned, aligned, colorization); listing images
    download.py   resumable HTTP(S) downloads and the download lock
    archives.py   extracting a zip or tar archive safely
    shapes.py     the built-in shapes2stripes set, generated on first use
    pipeline.py   the tf.data input pipeline of training and sampling; images, Lab
"""
