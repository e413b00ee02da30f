"""demo.py: the page of a tiny run served on 127.0.0.1, through Gradio's
Python client (concurrent requests, bad uploads) and in headless Chromium
(an upload comes back as sample.py translates it), and every registered
model's page. Gradio, Selenium and Chromium are the demo's optional
dependencies (requirements-demo.txt, Debian's chromium and chromium-driver):
the tests that need them skip without them, naming what is missing, and fail
instead when CI=true."""

import concurrent.futures
import configparser
import io
import os
import shutil
import socket
import struct
import tempfile
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image
from test_train import ROOT, TINY, make_data_root, tiny_args

from cyclegan_tf import config, demo, registry, sample, train
from cyclegan_tf.data import layouts

CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
# Where the browser test leaves its screenshot (pytest's own folders are rotated away).
SCREENSHOTS = os.environ.get('CYCLEGAN_DEMO_SCREENSHOTS',
                             os.path.join(tempfile.gettempdir(), 'cyclegan-demo-screenshots'))


def _missing(what):
    message = (f'{what} is not installed (the demo\'s test needs it: pip install -r '
               f'requirements-demo.txt; apt-get install chromium chromium-driver)')
    if os.environ.get('CI') == 'true':
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope='module')
def gr():
    try:
        import gradio
        import gradio_client  # noqa: F401
    except ImportError:
        _missing('gradio')
    return gradio


def _png(path):
    with Image.open(path) as image:
        return np.asarray(image)


def _close(a, b):
    """Whether two uint8 images are equal within one 8-bit level."""
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


# ------------------------------------------------------------ without Gradio


def test_fit_scales_the_longer_side_down_and_says_so():
    image = Image.new('RGB', (300, 120))
    same, note = demo.fit(image, 300)
    assert same is image and note == ''
    small, note = demo.fit(image, 100)
    assert small.size == (100, 40) and '300x120' in note and '100x40' in note
    assert demo.fit(Image.new('L', (1, 5000)), 64)[0].size == (1, 64)


def test_defaults_serve_this_machine_only_and_share_nothing():
    dcfg = config.DemoConfig()
    assert (dcfg.host, dcfg.share, dcfg.best, dcfg.eval) == ('127.0.0.1', False, False, False)


def test_the_core_install_leaves_gradio_out():
    setup = configparser.ConfigParser()
    setup.read(ROOT / 'setup.cfg')
    assert 'gradio' not in setup['options']['install_requires']
    assert 'gradio' in setup['options.extras_require']['demo']
    assert 'gradio' not in (ROOT / 'requirements.txt').read_text()
    assert 'gradio==' in (ROOT / 'requirements-demo.txt').read_text()
    assert 'cyclegan-demo = cyclegan_tf.demo:main' in setup['options.entry_points'][
        'console_scripts']


def test_the_core_pins_a_pillow_that_gradio_accepts(gr):
    """One environment holds the core and the demo (.ci/run): requirements.txt's
    pillow is within the installed Gradio's requirement (pillow < 13 for 6.31)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    pins = [Requirement(line) for line in (ROOT / 'requirements.txt').read_text().splitlines()
            if line.lower().startswith('pillow==')]
    wanted = [Requirement(r) for r in metadata.requires('gradio') if r.lower().startswith('pillow')]
    assert len(pins) == 1 and len(wanted) == 1, (pins, wanted)
    version = str(pins[0].specifier).removeprefix('==')
    assert wanted[0].specifier.contains(version), f'pillow {version}: gradio wants {wanted[0]}'
    demo_pins = (ROOT / 'requirements-demo.txt').read_text().lower().splitlines()
    assert not [line for line in demo_pins if line.startswith('pillow')]  # no second pin


def test_without_gradio_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(__import__('sys').modules, 'gradio', None)  # import gradio fails
    assert demo.main(['demo.py', f'--run={tmp_path}']) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'pip install -r requirements-demo.txt' in err, err


def test_the_page_binds_host_and_shares_only_when_asked():
    class App:
        def launch(self, **kwargs):
            self.kwargs = kwargs

    app = App()
    demo.launch(app, config.DemoConfig())
    assert (app.kwargs['server_name'], app.kwargs['server_port'], app.kwargs['share']) == (
        '127.0.0.1', 7860, False)
    demo.launch(app, config.DemoConfig(host='0.0.0.0', port=8080, share=True))
    assert (app.kwargs['server_name'], app.kwargs['server_port'], app.kwargs['share']) == (
        '0.0.0.0', 8080, True)


@pytest.mark.parametrize('args, words', [
    (['--port=0'], '--port'), (['--max_size=0'], '--max_size'), (['--bogus'], 'bogus')])
def test_bad_flags_are_one_line_and_exit_2(args, words, capsys):
    assert demo.main(['demo.py', *args]) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and words in err, err


# ------------------------------------------------------- a served tiny run


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def served(gr, tmp_path_factory):
    """A tiny CycleGAN run (2 steps), sample.py's translation of its test
    split, and its page served on 127.0.0.1: a dict."""
    tmp = tmp_path_factory.mktemp('demo')
    data_root = make_data_root(tmp / 'datasets')
    assert train.main(tiny_args(tmp / 'runs', data_root, '--max_steps=2')) == 0
    run_dir = str(tmp / 'runs' / 'tiny')
    assert sample.main(['sample.py', f'--run={run_dir}', f'--results_dir={tmp / "sampled"}']) == 0
    dcfg = config.DemoConfig(run=run_dir, port=_free_port(), max_size=64, max_megapixels=60)
    page = demo.Page(dcfg, run_dir, None)
    app = demo.build(gr, page)
    demo.launch(app, dcfg, prevent_thread_lock=True, quiet=True)
    try:
        yield {'url': f'http://127.0.0.1:{dcfg.port}/', 'page': page, 'tmp': tmp,
               'test': os.path.join(data_root, 'shapes2stripes'),
               'sampled': tmp / 'sampled' / 'images'}
    finally:
        app.close()
        page.close()


def _client(served):
    from gradio_client import Client

    return Client(served['url'], verbose=False)


def _translate(client, path, direction):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), direction, api_name='/translate')


def test_the_page_says_what_it_shows(served):
    page = served['page']
    assert page.directions == ['AtoB', 'BtoA'] and page.reconstructs
    assert 'tiny' in page.about and 'cycle_gan' in page.about and 'step 2' in page.about
    assert len(page.examples) == 2 * 4 and {d for _, d in page.examples} == {'AtoB', 'BtoA'}
    with urllib.request.urlopen(served['url'], timeout=30) as response:
        assert response.status == 200


@pytest.mark.parametrize('flag, words', [
    ('--best', 'has no best checkpoint'), ('--checkpoint=nothing/model.ckpt-9', 'no checkpoint')])
def test_a_missing_checkpoint_is_one_line_and_exit_2(served, flag, words, capsys):
    assert demo.main(['demo.py', f'--run={served["page"].run_dir}', flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('demo.py: error: ') and '\n' not in err and words in err, err


def test_concurrent_requests_each_get_their_own_result(served):
    """8 requests at once, both directions: each answer is sample.py's."""
    client = _client(served)
    work = [(os.path.join(served['test'], f'test{k}', f'{i:04d}.png'), f'{k}to{"BA"[k == "B"]}')
            for i in range(4) for k in 'AB']
    with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
        answers = list(pool.map(lambda job: _translate(client, *job), work))
    for (path, direction), (translation, reconstruction, png, note) in zip(work, answers):
        stem, a, b = os.path.basename(path)[:4], direction[0], direction[-1]
        assert _close(_png(translation), _png(served['sampled'] / f'{stem}_fake_{b}.png'))
        assert _close(_png(reconstruction), _png(served['sampled'] / f'{stem}_rec_{a}.png'))
        assert np.array_equal(_png(png), _png(translation)) and png.endswith(f'_fake_{b}.png')
        assert note == ''


def _huge_png_header(path, width, height):
    """A PNG file that says it is width x height and holds one row of data."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack(
            '>I', zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
                     + chunk(b'IDAT', zlib.compress(b'\0' * (width + 1))) + chunk(b'IEND', b''))
    return path


def test_bad_uploads_are_messages_on_the_page_and_the_server_goes_on(served, tmp_path):
    from gradio_client.exceptions import AppError

    client = _client(served)
    good = os.path.join(served['test'], 'testA', '0001.png')
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / 'cut.png').write_bytes(open(good, 'rb').read()[:200])
    bad = {'notes.txt': 'Cannot read the upload as an image', 'cut.png': 'Cannot read',
           'huge.png': 'megapixels'}
    _huge_png_header(tmp_path / 'huge.png', 9000, 8000)  # 72 MP, over --max_megapixels 60
    for name, words in bad.items():
        with pytest.raises(AppError, match=words) as error:
            _translate(client, tmp_path / name, 'AtoB')
        assert str(tmp_path) not in str(error.value)  # no server paths on the page
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(tmp_path / 'dot.png')
    translation, _, _, note = _translate(client, tmp_path / 'dot.png', 'BtoA')
    assert _png(translation).shape == (1, 1, 3) and note == ''
    Image.new('RGB', (200, 50), (90, 30, 10)).save(tmp_path / 'wide.png')
    translation, reconstruction, _, note = _translate(client, tmp_path / 'wide.png', 'AtoB')
    assert _png(translation).shape == (16, 64, 3) and _png(reconstruction).shape == (16, 64, 3)
    assert 'scaled down to 64x16' in note
    translation = _translate(client, good, 'AtoB')[0]  # still serving
    assert _close(_png(translation), _png(served['sampled'] / '0001_fake_B.png'))


def test_a_50_megapixel_photo_is_scaled_down_with_a_note(served, tmp_path):
    Image.new('L', (8660, 5780), 128).save(tmp_path / 'big.png')  # 50.1 MP
    translation, _, _, note = _translate(_client(served), tmp_path / 'big.png', 'AtoB')
    assert _png(translation).shape == (43, 64, 3) and '8660x5780' in note


def _chrome():
    """Headless Chromium; its camera is Chromium's synthetic one (a green frame,
    no permission prompt): --use-fake-*-for-media-stream."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing('selenium')
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            _missing(path)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                     '--window-size=1400,1100', '--lang=en-US',
                     '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope='module')
def browser(served):
    """(driver, wait): one headless Chromium for the browser tests, on a fresh
    load of the served page at each test."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chrome()
    try:
        yield driver, WebDriverWait(driver, 60)
    finally:
        driver.quit()


@pytest.fixture
def page_in(browser, served):
    """browser's (driver, wait) after loading the served page."""
    driver, _ = browser
    driver.get(served['url'])
    return browser


def _find(wait, selector):
    """The element of CSS ``selector``, once it is on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen

    return wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, selector)))


def _screenshot(driver, name, capsys):
    """Saves the page to SCREENSHOTS/<name> and prints its path (passed or not, -n 0)."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.join(SCREENSHOTS, name)
    assert driver.save_screenshot(path)
    with capsys.disabled():
        print(f'\nscreenshot of the demo page: {path}')


def _errors_on_page(driver):
    """The texts of the page's error toasts (gr.Error's messages)."""
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid=toast-body]')]


def test_an_upload_in_a_real_browser_comes_back_as_sample_py_translates_it(served, page_in,
                                                                           capsys):
    driver, wait = page_in
    upload = _find(wait, '#input input[type=file]')
    upload.send_keys(os.path.join(served['test'], 'testA', '0002.png'))
    image = _find(wait, '#translation img[src]')
    link = _find(wait, '#download a')
    _screenshot(driver, 'demo_page.png', capsys)
    shown = _fetch_png(image.get_attribute('src'))
    downloaded = _fetch_png(link.get_attribute('href'))
    expected = _png(served['sampled'] / '0002_fake_B.png')
    assert _close(shown, expected) and _close(downloaded, expected)


def test_clicking_an_example_in_a_real_browser_translates_it_as_sample_py_does(
        served, page_in, capsys):
    """The second example of B (testB/0001.png): its row sets input and direction
    and translates them at once."""
    driver, wait = page_in
    path, direction = served['page'].examples[5]
    assert direction == 'BtoA' and np.array_equal(
        _png(path), _png(os.path.join(served['test'], 'testB', '0001.png')))
    cell = _find(wait, f'tr.tr-body img[src$="/{os.path.basename(path)}"]')
    cell.click()  # Selenium scrolls it into view
    translation = _find(wait, '#translation img[src]')
    reconstruction = _find(wait, '#reconstruction img[src]')
    _screenshot(driver, 'demo_example.png', capsys)
    assert _close(_fetch_png(translation.get_attribute('src')),
                  _png(served['sampled'] / '0001_fake_A.png'))
    assert _close(_fetch_png(reconstruction.get_attribute('src')),
                  _png(served['sampled'] / '0001_rec_B.png'))
    assert _find(wait, '#direction input[value=BtoA]').is_selected()
    assert _errors_on_page(driver) == []


def test_a_webcam_frame_in_a_real_browser_is_translated(served, page_in, capsys, tmp_path):
    """Chromium's synthetic camera: the page switches to the webcam, takes a
    photo, uploads it and translates it; the translation shown is the one of
    the photo the page shows as its input."""
    driver, wait = page_in
    _find(wait, '#input button[aria-label="Capture from camera"]').click()
    _find(wait, '#input [title="grant webcam access"] button').click()
    video = _find(wait, '#input video')
    wait.until(lambda _: driver.execute_script(
        'return arguments[0].readyState >= 2 && arguments[0].videoWidth > 0', video))
    _find(wait, '#input button[aria-label="capture photo"]').click()
    translation = _find(wait, '#translation img[src]')
    photo = _fetch_png(_find(wait, '#input img[src]').get_attribute('src'))
    _screenshot(driver, 'demo_webcam.png', capsys)
    assert photo.ndim == 3 and photo[..., 1].mean() > photo[..., 0].mean() + 40  # green
    Image.fromarray(photo).save(tmp_path / 'photo.png')
    expected, _, _, note = served['page'].translate(str(tmp_path / 'photo.png'), 'AtoB')
    shown = _fetch_png(translation.get_attribute('src'))
    width, height = demo.fit(Image.fromarray(photo), 64)[0].size
    assert shown.shape == (height, width, 3) and _close(shown, expected)
    assert _find(wait, '#note').text == note and _errors_on_page(driver) == []


def _fetch_png(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())))


# ------------------------------------------------------ every model's page


TOY = ['--steps_per_epoch=5', '--n_epochs=1', '--n_epochs_decay=1', '--hidden_units=8',
       '--batch_size=16', '--print_freq=5']


# CycleGAN's page is the served one's above, CUT's that of its own test below.
@pytest.mark.parametrize('name', sorted(set(registry.MODELS) - {'cycle_gan', 'cut'}))
def test_every_models_page_translates_or_draws(name, gr, tmp_path):
    spec = registry.get(name)
    extra = TOY
    if spec.images:
        extra = [a for a in TINY if not a.startswith('--pool_size')] + [
            '--dataset=shapes2stripes', f'--data_root={make_data_root(tmp_path / "datasets")}']
    assert train.main(['train.py', f'--model={name}', f'--runs_dir={tmp_path}', '--name=run',
                       *extra, '--max_steps=1']) == 0
    # --eval on both sides: pix2pix's dropout draws new masks at each run in training mode.
    page = demo.Page(config.DemoConfig(num_examples=1, eval=True), str(tmp_path / 'run'), None)
    try:
        demo.build(gr, page)
        assert name in page.about and 'step 1' in page.about
        if not spec.images:
            figure, line = page.draw()
            assert figure.ndim == 3 and 'mean' in line and page.draw()[1] != line
            return
        assert page.examples and page.directions[0] == 'AtoB'
        path = page.examples[0][0]
        translation = page.translate(path, 'AtoB')[0]
        assert sample.main(['sample.py', f'--run={tmp_path / "run"}', f'--input={path}',
                            f'--results_dir={tmp_path / "sampled"}', '--eval']) == 0
        images = tmp_path / 'sampled' / 'images'
        stem = os.path.splitext(os.path.basename(path))[0]
        expected = images / f'{stem}_fake_B_rgb.png'  # colorization's RGB
        assert _close(translation, _png(expected if expected.exists() else
                                        images / f'{stem}_fake_B.png'))
        if spec.data == layouts.ALIGNED:  # the input half of a pair of squares
            assert _png(path).shape[0] == _png(path).shape[1]
    finally:
        page.close()
        shutil.rmtree(tmp_path / 'datasets', ignore_errors=True)


def _page_config(url):
    """{elem_id: the component's props} of the served page, as its /config tells the browser."""
    import json

    with urllib.request.urlopen(url + 'config', timeout=30) as response:
        components = json.load(response)['components']
    return {c['props']['elem_id']: c['props'] for c in components if c['props'].get('elem_id')}


def test_a_cut_runs_page_translates_a_to_b_as_sample_py_does(gr, tmp_path):
    """A tiny CUT run served (one generator, A to B, no reconstruction): a
    request through gradio_client comes back as sample.py translates the same
    image, and the page says model cut, one direction, no reconstruction; a
    request for B to A is the page's message."""
    from gradio_client.exceptions import AppError

    data_root = make_data_root(tmp_path / 'datasets')
    small = [a for a in TINY if not a.startswith('--pool_size')] + ['--num_patches=8',
                                                                    '--netF_nc=8']
    assert train.main(['train.py', '--model=cut', f'--runs_dir={tmp_path}', '--name=cut',
                       *small, '--dataset=shapes2stripes', f'--data_root={data_root}',
                       '--max_steps=1']) == 0
    image = os.path.join(data_root, 'shapes2stripes', 'testA', '0003.png')
    assert sample.main(['sample.py', f'--run={tmp_path / "cut"}', f'--input={image}',
                        f'--results_dir={tmp_path / "sampled"}']) == 0
    dcfg = config.DemoConfig(port=_free_port(), num_examples=1)
    page = demo.Page(dcfg, str(tmp_path / 'cut'), None)
    app = demo.build(gr, page)
    demo.launch(app, dcfg, prevent_thread_lock=True, quiet=True)
    try:
        url = f'http://127.0.0.1:{dcfg.port}/'
        shown = _page_config(url)
        assert '**model** cut' in shown['about']['value'] and 'step 1' in shown['about']['value']
        assert not shown['reconstruction']['visible'] and not shown['direction']['visible']
        assert [d for _, d in page.examples] == ['AtoB']
        client = _client({'url': url})
        translation, reconstruction, png, note = _translate(client, image, 'AtoB')
        expected = _png(tmp_path / 'sampled' / 'images' / '0003_fake_B.png')
        assert _close(_png(translation), expected) and _close(_png(png), expected)
        assert reconstruction is None and note == ''
        with pytest.raises(AppError, match="Choose a direction: AtoB \\(not 'BtoA'\\)"):
            _translate(client, image, 'BtoA')  # demo.py's line: Gradio's radio printed a traceback
    finally:
        app.close()
        page.close()


def test_an_imported_generator_translates_its_direction_only(gr, fixtures_dir, tmp_path):
    from cyclegan_tf import import_torch

    path = fixtures_dir / 'torch_reference' / 'resnet_6blocks_ngf8.pth'
    assert import_torch.main(['import_torch.py', f'--pth={path}', '--ngf=8', '--ndf=8',
                              '--netG=resnet_6blocks', f'--runs_dir={tmp_path}',
                              '--name=imported']) == 0
    page = demo.Page(config.DemoConfig(), str(tmp_path / 'imported'), None)
    try:
        demo.build(gr, page)
        assert page.directions == ['AtoB'] and not page.reconstructs
        assert 'imported G_A' in page.about and 'step 0' in page.about
        Image.new('RGB', (20, 12), (10, 200, 30)).save(tmp_path / 'photo.png')
        translation, reconstruction, _, _ = page.translate(str(tmp_path / 'photo.png'), 'AtoB')
        assert translation.shape == (12, 20, 3) and reconstruction is None
        with pytest.raises(demo.UploadError, match='AtoB'):
            page.translate(str(tmp_path / 'photo.png'), 'BtoA')
    finally:
        page.close()
