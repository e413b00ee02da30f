"""metrics.py: FID's trace of a square root three ways against an iterated
sqrtm, KID against a loop-by-loop MMD, the fixtures' reference numbers, SSIM
against tf.image.ssim, and the folder feature cache (with a stand-in
extractor, no network)."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf.data import layouts
from cyclegan_tf.evaluation import metrics

tf1 = tf.compat.v1


def _features(rng, n, d, shift=0.0):
    """Correlated features, as an Inception layer gives."""
    mixing = rng.standard_normal([d, d]) / np.sqrt(d)
    return rng.standard_normal([n, d]) @ mixing + shift + rng.standard_normal(d)


def _denman_beavers_sqrtm(m, iterations=40):
    """sqrtm of a matrix without eigenvalues on the closed negative real axis."""
    y, z = m.copy(), np.eye(len(m))
    for _ in range(iterations):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


def _symmetric_trace_sqrt(sigma_a, sigma_b):
    """Tr sqrtm(sqrt(S_a) S_b sqrt(S_a)), which equals Tr sqrtm(S_a S_b)."""
    w, v = np.linalg.eigh(sigma_a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma_b @ root), 0, None)).sum()


def _relative(a, b):
    return abs(a - b) / abs(b)


def test_trace_sqrt_forms_agree_with_an_iterated_sqrtm():
    rng = np.random.RandomState(0)
    a, b = _features(rng, 300, 24), _features(rng, 250, 24, shift=0.3)
    (mu_a, s_a), (mu_b, s_b) = metrics.moments(a), metrics.moments(b)
    root = _denman_beavers_sqrtm(s_a @ s_b)
    assert np.abs(root @ root - s_a @ s_b).max() < 1e-9
    reference = np.trace(root)
    assert _relative(metrics.trace_sqrt_product(s_a, s_b), reference) < 1e-6
    assert _relative(_symmetric_trace_sqrt(s_a, s_b), reference) < 1e-6
    expected = (mu_a - mu_b) @ (mu_a - mu_b) + np.trace(s_a) + np.trace(s_b) - 2 * reference
    assert _relative(metrics.frechet_distance(mu_a, s_a, mu_b, s_b), expected) < 1e-6
    assert _relative(metrics.fid(a, b), expected) < 1e-6
    # The singular-value form, which fid() takes for few images, on the same data.
    assert _relative(metrics.fid(a[:20], b[:30]), metrics.frechet_distance(
        *metrics.moments(a[:20]), *metrics.moments(b[:30]))) < 1e-6


def test_fid_of_fewer_images_than_dimensions_agrees_with_the_eigenvalue_form():
    # Rank-deficient covariances (n < d), as for a test split of 120 images
    # and 2048 features: the eigenvalue form's near-zero eigenvalues are
    # rounding noise, clipped; the singular-value form has none.
    rng = np.random.RandomState(1)
    a, b = _features(rng, 12, 64), _features(rng, 9, 64, shift=0.5)
    (mu_a, s_a), (mu_b, s_b) = metrics.moments(a), metrics.moments(b)
    slow = metrics.frechet_distance(mu_a, s_a, mu_b, s_b)
    assert _relative(metrics.fid(a, b), slow) < 1e-6
    diff = mu_a - mu_b
    symmetric = diff @ diff + np.trace(s_a) + np.trace(s_b) - 2 * _symmetric_trace_sqrt(s_a, s_b)
    assert _relative(metrics.fid(a, b), symmetric) < 1e-6


def test_fid_is_zero_for_one_set_and_symmetric():
    rng = np.random.RandomState(2)
    a, b = _features(rng, 40, 16), _features(rng, 30, 16, shift=1.0)
    assert abs(metrics.fid(a, a)) < 1e-8
    assert _relative(metrics.fid(a, b), metrics.fid(b, a)) < 1e-9
    assert metrics.fid(a, b) > 1.0
    with pytest.raises(ValueError, match='n >= 2'):
        metrics.fid(a[:1], b)
    with pytest.raises(ValueError, match='different sizes'):
        metrics.fid(a, b[:, :8])


def _mmd2_by_loops(x, y):
    m, d = x.shape

    def k(u, v):
        return (u @ v / d + 1) ** 3

    same = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return same / (m * (m - 1)) - 2 * cross / m ** 2


def test_kid_is_the_unbiased_polynomial_mmd_over_seeded_subsets():
    rng = np.random.RandomState(3)
    a, b = _features(rng, 9, 8), _features(rng, 7, 8, shift=0.2)
    mean, std, m = metrics.kid(a, b, subsets=5, subset_size=4)
    assert m == 4
    draws = np.random.RandomState(2020)
    values = []
    for _ in range(5):
        x = a[draws.choice(9, 4, replace=False)]  # a first, then b, per subset
        y = b[draws.choice(7, 4, replace=False)]
        values.append(_mmd2_by_loops(x, y))
    assert _relative(mean, np.mean(values)) < 1e-9
    assert _relative(std, np.std(values)) < 1e-9
    assert metrics.kid(a, b)[2] == 7  # min(1000, n_a, n_b)
    assert abs(metrics.kid(a, a)[0]) < 0.5 * metrics.kid(a, b + 3.0)[0]


def test_scores_match_the_fixtures_reference(fixtures_dir):
    features = np.load(fixtures_dir / 'fid' / 'horse2zebra_mini_pool3.npz')
    reference = json.loads((fixtures_dir / 'fid' / 'horse2zebra_mini_reference.json').read_text())
    assert reference['pairs']
    for pair, expected in reference['pairs'].items():
        real, fake = pair.split('|')
        result = metrics.scores(features[real], features[fake])
        assert result['n_real'] == len(features[real]) and result['n_fake'] == len(features[fake])
        assert result['kid_subset_size'] == expected['kid_subset_size']
        for key in ('fid', 'kid_mean', 'kid_std'):
            # 0.01 %; a standard deviation of 1e-16 (every subset the whole set) is rounding
            assert abs(result[key] - expected[key]) <= 1e-4 * abs(expected[key]) + 1e-12, (
                pair, key, result[key], expected[key])


# ---------------------------------------------------------------------------
# Paired scores.

@pytest.mark.parametrize('shape', [(2, 32, 40, 3), (1, 11, 15, 1)])
def test_ssim_matches_tf_image_ssim(graph, shape):
    rng = np.random.RandomState(4)
    a = rng.uniform(size=shape).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, shape) + 0.05, 0, 1).astype(np.float32)
    expected = tf1.Session(graph=graph).run(tf.image.ssim(a, b, max_val=1.0))
    result = metrics.ssim(a, b)
    assert result.shape == expected.shape == shape[:1]
    # tf.image.ssim computes in float32 (about 1e-6 off over random images), we in float64.
    assert np.allclose(result, expected, rtol=0, atol=1e-5)
    assert 0.3 < result.min() < 0.99
    assert metrics.ssim(a[0], a[0]) == pytest.approx(1.0)
    assert metrics.ssim(a[0], b[0]) == pytest.approx(expected[0])
    with pytest.raises(ValueError, match='one shape'):
        metrics.ssim(a, b[:, :, :-1])


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match='at least 11x11'):
        metrics.ssim(np.zeros([10, 20, 3]), np.zeros([10, 20, 3]))


def test_psnr_and_l1():
    a = np.zeros([4, 4, 3])
    b = np.full([4, 4, 3], 0.1)
    assert metrics.psnr(a, b) == pytest.approx(20.0)
    assert metrics.psnr(a, a) == 100.0
    assert metrics.l1(a, b) == pytest.approx(0.1)


# ---------------------------------------------------------------------------
# Folders and the feature cache.

class CountingExtractor:
    """Stands for inception.FeatureExtractor: features from pixel statistics."""

    def __init__(self, weights_id='weights-1'):
        self.weights_id, self.calls = weights_id, []

    def file_features(self, paths, *, desc=''):
        self.calls.append(list(paths))
        rows = []
        for path in paths:
            image = np.asarray(Image.open(path).convert('RGB'), np.float32)
            rows.append(np.concatenate([image.mean((0, 1)), image.std((0, 1))]))
        return np.array(rows, np.float32), list(paths)


def _write_images(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(count):
        Image.fromarray(rng.randint(0, 256, [8, 8, 3], np.uint8)).save(folder / f'{i}.png')
    return folder


def test_folder_features_come_from_the_cache_until_a_file_or_the_weights_change(tmp_path):
    folder = _write_images(tmp_path / 'real', 3)
    cache = tmp_path / 'cache'
    extractor = CountingExtractor()
    first, paths = metrics.folder_features(extractor, str(folder), cache_folder=str(cache))
    assert [p.split('/')[-1] for p in paths] == ['0.png', '1.png', '2.png']
    again, again_paths = metrics.folder_features(extractor, str(folder), cache_folder=str(cache))
    assert len(extractor.calls) == 1  # the second time from the cache
    assert np.array_equal(again, first) and again_paths == paths
    assert len(list((cache / 'features').glob('*.npz'))) == 1

    metrics.folder_features(CountingExtractor('weights-2'), str(folder), cache_folder=str(cache))
    Image.fromarray(np.zeros([8, 8, 3], np.uint8)).save(folder / '1.png')
    changed, _ = metrics.folder_features(extractor, str(folder), cache_folder=str(cache))
    assert len(extractor.calls) == 2 and not np.array_equal(changed, first)
    metrics.folder_features(extractor, str(folder), use_cache=False, cache_folder=str(cache))
    assert len(extractor.calls) == 3
    assert len(list((cache / 'features').glob('*.npz'))) == 3


def test_a_damaged_cache_file_is_computed_again(tmp_path, caplog):
    folder = _write_images(tmp_path / 'real', 2)
    extractor = CountingExtractor()
    metrics.folder_features(extractor, str(folder), cache_folder=str(tmp_path))
    (cached,) = (tmp_path / 'features').glob('*.npz')
    cached.write_bytes(b'not an npz')
    with caplog.at_level(logging.WARNING, logger='cyclegan_tf'):
        features, _ = metrics.folder_features(extractor, str(folder), cache_folder=str(tmp_path))
    assert len(extractor.calls) == 2 and features.shape == (2, 6)
    assert 'damaged feature cache' in caplog.text


def test_folder_features_warn_about_other_files_and_need_two_images(tmp_path, caplog):
    folder = _write_images(tmp_path / 'fake', 2)
    (folder / 'notes.txt').write_text('not an image')
    (folder / '.hidden.png').write_bytes(b'')
    with caplog.at_level(logging.WARNING, logger='cyclegan_tf'):
        features, paths = metrics.folder_features(CountingExtractor(), str(folder),
                                                  use_cache=False)
    assert features.shape == (2, 6) and len(paths) == 2
    assert 'notes.txt' in caplog.text and 'hidden' not in caplog.text
    (folder / '1.png').unlink()
    with pytest.raises(layouts.DatasetError, match='1 image files.*at least 2'):
        metrics.folder_features(CountingExtractor(), str(folder), use_cache=False)
    with pytest.raises(layouts.DatasetError, match='not a folder'):
        metrics.folder_features(CountingExtractor(), str(tmp_path / 'missing'))


def test_dangling_links_and_unreadable_files_are_skipped_and_left_out_of_the_key(
        tmp_path, caplog):
    """Issue 21.9: one dangling link (or a file that cannot be opened) made
    evaluate.py exit 2, as the cache key read every file before any was
    skipped. Now each is skipped with a warning, as train.py and sample.py
    do, and the key is computed from the files read: the link's removal
    keeps the cache."""
    folder = _write_images(tmp_path / 'real', 3)
    os.symlink(tmp_path / 'nowhere.png', folder / 'gone.png')
    os.symlink('loop.png', folder / 'loop.png')  # opening it fails (ELOOP)
    extractor = CountingExtractor()
    with caplog.at_level(logging.WARNING, logger='cyclegan_tf'):
        features, paths = metrics.folder_features(extractor, str(folder),
                                                  cache_folder=str(tmp_path / 'cache'))
    assert features.shape == (3, 6) and [os.path.basename(p) for p in paths] == \
        ['0.png', '1.png', '2.png']
    assert extractor.calls == [paths]
    for name in ('gone.png', 'loop.png'):
        assert f'skipping unreadable file {folder / name} (' in caplog.text
    os.remove(folder / 'gone.png')
    again, _ = metrics.folder_features(extractor, str(folder), cache_folder=str(tmp_path / 'cache'))
    assert len(extractor.calls) == 1 and np.array_equal(again, features)  # from the cache
