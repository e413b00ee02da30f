"""Image-quality scores: FID and KID of Inception features, SSIM, PSNR, L1.

FID (Heusel et al. 2017) exactly as TTUR's ``calculate_frechet_distance`` on
float64 features::

    ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr(sqrtm(S_a S_b))

with S = np.cov(features, rowvar=False). Tr(sqrtm(S_a S_b)) is the sum of
the square roots of the eigenvalues of S_a S_b (their real parts, clipped at
0: S_a S_b is similar to a symmetric positive semi-definite matrix, so they
are real and >= 0 up to rounding). :func:`trace_sqrt_product` computes them
from the 2048 x 2048 product, TTUR's form (about 20 s on 2 cores). With
fewer images than feature dimensions, :func:`fid` takes the same eigenvalues
from a smaller matrix: with A, B the centred features divided by
sqrt(n - 1), S_a S_b = A^T A B^T B, whose nonzero eigenvalues are those of
(A B^T)(A B^T)^T, the squared singular values of the n_a x n_b matrix A B^T;
so Tr(sqrtm(S_a S_b)) is the sum of the singular values of A B^T (below 1 s
for 1,000 images). tests/test_metrics.py checks both against a square root
computed by Denman-Beavers iteration to 1e-6 relative.

KID (Binkowski et al. 2018) as torch-fidelity: the unbiased MMD^2 with the
kernel k(x, y) = (x.y / d + 1)^3 over 100 subsets of m = min(1000, n_a, n_b)
rows, drawn by numpy.random.RandomState(2020), ``a`` then ``b`` for each
subset, without replacement; the mean and the standard deviation (ddof 0)
over subsets.

Folders: :func:`folder_features` lists a folder's images (sorted, recursive,
as layouts.list_images), warns about files that are no images or cannot be
read, and caches the features in ``<cache>/features/<key>.npz``, the key a
sha256 of the files' names and bytes and of the weights, so a second
evaluation against the same real set only computes the fakes.
:func:`score_folders` and :func:`score_arrays` give the scores of two sets.
"""

import hashlib
import logging
import os

import numpy as np

from cyclegan_tf.data import layouts
from cyclegan_tf.running import fileio

logger = logging.getLogger(__name__)

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020
CACHE_VERSION = b'fid-features-v1: PIL RGB, resize_bilinear 299, (x - 128) / 128, pool_3\n'


# ---------------------------------------------------------------------------
# FID.

def trace_sqrt_product(sigma_a, sigma_b):
    """Tr(sqrtm(sigma_a sigma_b)) as the sum of the square roots of the
    eigenvalues of the product (real parts, clipped at 0): TTUR's number
    without scipy. sigma_*: [d, d] covariances."""
    eigenvalues = np.linalg.eigvals(np.asarray(sigma_a, np.float64) @ np.asarray(
        sigma_b, np.float64))
    return float(np.sqrt(np.clip(eigenvalues.real, 0, None)).sum())


def frechet_distance(mu_a, sigma_a, mu_b, sigma_b):
    """FID of two Gaussians, mu_* [d], sigma_* [d, d] (TTUR's form)."""
    diff = np.asarray(mu_a, np.float64) - np.asarray(mu_b, np.float64)
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b)
                 - 2 * trace_sqrt_product(sigma_a, sigma_b))


def moments(features):
    """(mean [d], covariance [d, d]) of features [n, d] in float64, np.cov(rowvar=False)."""
    features = np.asarray(features, np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def _centred(features):
    """[n, d] features centred and divided by sqrt(n - 1): S = A^T A."""
    features = np.asarray(features, np.float64)
    return (features - features.mean(0)) / np.sqrt(len(features) - 1)


def _check_features(features_a, features_b):
    for name, f in (('a', features_a), ('b', features_b)):
        if np.ndim(f) != 2 or len(f) < 2:
            raise ValueError(f'features_{name} must be [n, d] with n >= 2, got shape '
                             f'{np.shape(f)}')
    if np.shape(features_a)[1] != np.shape(features_b)[1]:
        raise ValueError(f'features of different sizes: {np.shape(features_a)} and '
                         f'{np.shape(features_b)}')


def fid(features_a, features_b):
    """The FID of two sets of features [n_a, d], [n_b, d] (n >= 2), float64.

    Equal to frechet_distance(*moments(a), *moments(b)); with few images (n_a
    n_b min(n_a, n_b) <= d^3) the trace of the square root comes from the
    singular values of A B^T (see the module docstring), much faster.
    """
    _check_features(features_a, features_b)
    n_a, n_b, d = len(features_a), len(features_b), np.shape(features_a)[1]
    if n_a * n_b * min(n_a, n_b) > d ** 3:
        return frechet_distance(*moments(features_a), *moments(features_b))
    a, b = _centred(features_a), _centred(features_b)
    diff = (np.asarray(features_a, np.float64).mean(0)
            - np.asarray(features_b, np.float64).mean(0))
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(diff @ diff + np.sum(a * a) + np.sum(b * b) - 2 * trace_sqrt)


# ---------------------------------------------------------------------------
# KID.

def polynomial_mmd2(x, y):
    """The unbiased MMD^2 of two samples [m, d] (m >= 2) with the kernel
    (x.y / d + 1)^3, as torch-fidelity's mmd2 (mmd_est='unbiased')."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    off_diagonal = k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)
    return off_diagonal / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def kid(features_a, features_b, *, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE,
        seed=KID_SEED):
    """(mean, standard deviation, subset size m) of the KID of two sets of
    features [n, d] over ``subsets`` subsets of m = min(subset_size, n_a, n_b)
    rows each: for each, ``a`` rows then ``b`` rows drawn without replacement
    by one RandomState(seed)."""
    _check_features(features_a, features_b)
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    m = min(subset_size, len(a), len(b))
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        values[i] = polynomial_mmd2(x, y)
    return float(values.mean()), float(values.std()), m


def scores(real, fake):
    """dict fid, kid_mean, kid_std, kid_subset_size, kid_subsets, n_real,
    n_fake of two sets of features [n, d] (KID's subsets draw from ``real``
    first)."""
    kid_mean, kid_std, m = kid(real, fake)
    return {'fid': fid(real, fake), 'kid_mean': kid_mean, 'kid_std': kid_std,
            'kid_subset_size': m, 'kid_subsets': KID_SUBSETS, 'n_real': len(real),
            'n_fake': len(fake)}


# ---------------------------------------------------------------------------
# Paired scores of images in [0, 1].

def _gaussian(size=11, sigma=1.5):
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-coords ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x, kernel):
    """Separable 'VALID' filtering of [..., H, W, C] over H and W."""
    size = len(kernel)
    x = np.lib.stride_tricks.sliding_window_view(x, size, axis=-3) @ kernel
    return np.lib.stride_tricks.sliding_window_view(x, size, axis=-2) @ kernel


def ssim(a, b, *, max_val=1.0, filter_size=11, sigma=1.5, k1=0.01, k2=0.03):
    """The SSIM (Wang et al. 2004) of images [..., H, W, C], H and W >= 11:
    Gaussian window 11, sigma 1.5, the window's valid positions only,
    averaged over positions and channels, as tf.image.ssim. Returns [...]
    (a float for single images)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f'ssim needs two images [..., H, W, C] of one shape, got {a.shape} '
                         f'and {b.shape}')
    if min(a.shape[-3:-1]) < filter_size:
        raise ValueError(f'ssim needs images of at least {filter_size}x{filter_size}, got '
                         f'{a.shape[-3]}x{a.shape[-2]}')
    kernel = _gaussian(filter_size, sigma)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mean_a, mean_b = _filter_valid(a, kernel), _filter_valid(b, kernel)
    products = mean_a * mean_b
    squares = mean_a ** 2 + mean_b ** 2
    luminance = (2 * products + c1) / (squares + c1)
    covariance = 2 * _filter_valid(a * b, kernel) - 2 * products
    variances = _filter_valid(a * a + b * b, kernel) - squares
    structure = (covariance + c2) / (variances + c2)
    result = np.mean(luminance * structure, axis=(-3, -2, -1))
    return float(result) if result.ndim == 0 else result


def psnr(a, b, *, max_val=1.0):
    """PSNR in dB of two images of one shape; 100 for identical images."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(max_val ** 2 / mse)) if mse > 0 else 100.0


def l1(a, b):
    """Mean absolute difference of two images of one shape."""
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---------------------------------------------------------------------------
# Folders.

def folder_images(folder):
    """The image files under ``folder`` (layouts.list_images: sorted,
    recursive, hidden files left out); warns about other files; raises
    DatasetError for a missing folder."""
    if not os.path.isdir(folder):
        raise layouts.DatasetError(f'{folder} is not a folder of images')
    others = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith('.')]
        others += [os.path.join(root, f) for f in files
                   if not f.startswith('.') and not layouts.is_image_file(f)]
    if others:
        logger.warning('skipping %d files of %s that are no images (%s%s)', len(others),
                       folder, ', '.join(sorted(others)[:3]), ', ...' if len(others) > 3 else '')
    return layouts.list_images(folder)


def folder_key(folder, paths, weights_id):
    """(the feature cache's key, the paths read): sha256 of the files
    (names relative to ``folder``, and bytes) and the weights. A file that
    cannot be read (a dangling link, no permission) is skipped with a
    warning and left out of the key."""
    digest = hashlib.sha256(CACHE_VERSION + weights_id.encode() + b'\n')
    read = []
    for path in paths:
        try:
            with open(path, 'rb') as f:
                content = f.read()
        except OSError as e:
            logger.warning('skipping unreadable file %s (%s)', path, e.strerror or e)
            continue
        name = os.path.relpath(path, folder).replace(os.sep, '/').encode()
        digest.update(b'%d:%s%d:' % (len(name), name, len(content)))
        digest.update(content)
        read.append(path)
    return digest.hexdigest(), read


def _read_cache(path, folder):
    try:
        with np.load(path) as cached:
            features, names = cached['features'], [str(n) for n in cached['files']]
        return features, [os.path.join(folder, n) for n in names]
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged file: computed again and replaced
        logger.warning('ignoring the damaged feature cache %s (%s)', path,
                       ' '.join(str(e).split()))
        return None


def _write_cache(path, features, names):
    with fileio.atomic_write(path) as f:
        np.savez(f, features=features, files=np.array(names, dtype=str))


def folder_features(extractor, folder, *, cache_folder=None, use_cache=True):
    """(features float32 [n, 2048], paths) of the readable images of ``folder``.

    Unreadable image files are skipped with a warning; fewer than 2 readable
    images raise DatasetError. With ``use_cache`` the features are read from,
    or written to, ``<cache_folder>/features/<folder_key>.npz`` (default
    cache_folder: inception.cache_dir()).
    """
    paths = folder_images(folder)
    if len(paths) < 2:
        raise layouts.DatasetError(f'{folder} has {len(paths)} image files: FID and KID '
                                   f'need at least 2')
    path = None
    if use_cache:
        if cache_folder is None:
            from cyclegan_tf.evaluation import inception
            cache_folder = inception.cache_dir()
        key, paths = folder_key(folder, paths, extractor.weights_id)
        path = os.path.join(cache_folder, 'features', key + '.npz')
        cached = _read_cache(path, folder)
        if cached is not None:
            logger.info('features of %s from the cache %s', folder, path)
            return cached
    features, kept = extractor.file_features(paths, desc=os.path.basename(
        os.path.normpath(folder)))
    if len(kept) < 2:
        raise layouts.DatasetError(f'{folder} has {len(kept)} readable images: FID and KID '
                                   f'need at least 2')
    if path is not None:
        _write_cache(path, features, [os.path.relpath(p, folder) for p in kept])
    return features, kept


def weights_note(scores):
    """The line that says the FID of ``scores`` (with FeatureExtractor's
    weights_record) is not comparable to published FIDs, or None when it is
    (or nothing says which weights it was computed with)."""
    if scores.get('fid_weights_standard') is not False:
        return None
    return (f'not comparable to published FIDs: the FID weights (sha256 '
            f'{str(scores.get("weights_sha256"))[:12]}...) are not pytorch-fid\'s file')


def score_folders(extractor, real_dir, fake_dir, **cache_options):
    """:func:`scores` of the images of two folders, with ``real_dir`` and
    ``fake_dir`` added (cache options: see :func:`folder_features`)."""
    real, _ = folder_features(extractor, real_dir, **cache_options)
    fake, _ = folder_features(extractor, fake_dir, **cache_options)
    return dict(scores(real, fake), real=real_dir, fake=fake_dir)


def score_arrays(extractor, real_images, fake_images):
    """:func:`scores` of two sets of images (see FeatureExtractor.features:
    arrays [H, W, C] of values 0..255, any sizes), at least 2 each. For
    training's periodic evaluation, which holds its translations in memory."""
    real = extractor.features(real_images, desc='real')
    fake = extractor.features(fake_images, desc='fake')
    for name, f in (('real', real), ('fake', fake)):
        if len(f) < 2:
            raise ValueError(f'FID and KID need at least 2 {name} images, got {len(f)}')
    return scores(real, fake)
