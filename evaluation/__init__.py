"""Evaluating and showing results.

    sampling.py    translating a run's test split (or files), writing images,
                   index.html and scores.json: for sample.py, evaluate.py, --eval_freq
    video.py       translating videos frame by frame (PyAV, optional; GIFs with Pillow)
    streaming.py   many files in flat memory: the writer thread, resuming, progress bars
    inception.py   the FID Inception-v3 as graph code, its weights from a .pth
    metrics.py     FID, KID, SSIM, PSNR; the feature cache
    visuals.py     sample grids and HTML pages
    tiling.py      translating large images tile by tile, with the whole image's
                   normalization statistics: for inference.Translator
"""
