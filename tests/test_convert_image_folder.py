"""Tests for converting a folder of class sub-folders into TFRecords."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sklearn.datasets
from PIL import Image

from datasets.convert_image_folder import TooManyRejectedError, convert_image_folder
from datasets.progress import ProgressPrinter
from tests.tfrecord_reading import read_records, shard_paths

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_PHOTOS = os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images')
UNICODE_CLASS = 'ünïcødé 鳥'


def _pixels(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3)).astype(np.uint8)


def _save(path: str, image: Image.Image, image_format: str, **options) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, image_format, **options)


def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as output:
        output.write(data)


def _sample_photo(name: str) -> bytes:
    with open(os.path.join(SAMPLE_PHOTOS, name), 'rb') as photo:
        return photo.read()


def _build_mixed_folder(root: str) -> dict:
    """Writes images of every supported kind plus bad and non-image files.

    Returns:
        Per relative path of an image that must convert, what to expect:
        'kept' (the JPEG bytes stay), 'reencoded' (a lossy re-encoding) or
        ('pixels', the exact RGB pixels).
    """
    rgb = Image.fromarray(_pixels(6, 8, 0))
    expected = {}

    def image(relative: str, picture: Image.Image, image_format: str, expectation,
              **options) -> None:
        _save(os.path.join(root, relative), picture, image_format, **options)
        expected[relative] = expectation

    image('cats/baseline.jpg', rgb, 'JPEG', 'kept', quality=90)
    image('cats/progressive.jpeg', rgb, 'JPEG', 'kept', progressive=True)
    image('cats/gray.jpg', rgb.convert('L'), 'JPEG', 'kept')
    columns, rows = np.meshgrid(np.arange(16) * 16, np.arange(16) * 12)
    gradient = np.stack([columns, rows, np.full((16, 16), 128)], axis=2).astype(np.uint8)
    image('cats/cmyk.jpg', Image.fromarray(gradient).convert('CMYK'), 'JPEG', 'reencoded',
          quality=95)
    image('cats/café ☕.png', rgb, 'PNG', ('pixels', np.asarray(rgb)))
    # A PNG with a JPEG extension is read by its content.
    image('cats/disguised.jpg', rgb, 'PNG', ('pixels', np.asarray(rgb)))
    _write_bytes(os.path.join(root, 'cats/china.jpg'), _sample_photo('china.jpg'))
    expected['cats/china.jpg'] = 'kept'

    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = _pixels(2, 3, 2)
    rgba[0, :, 3] = 255  # Opaque row: colours stay.
    rgba[1, :, 3] = 0  # Transparent row: shown over white.
    image('dogs/alpha.png', Image.fromarray(rgba), 'PNG',
          ('pixels', np.concatenate([rgba[:1, :, :3], np.full((1, 3, 3), 255, np.uint8)])))
    palette = rgb.quantize(colors=7)
    image('dogs/palette.png', palette, 'PNG', ('pixels', np.asarray(palette.convert('RGB'))))
    deep = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3449)
    scaled = np.floor(deep.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    image('dogs/deep.png', Image.fromarray(deep), 'PNG',
          ('pixels', np.repeat(scaled[..., None], 3, axis=2)))
    image('dogs/anim.gif', palette, 'GIF', ('pixels', np.asarray(palette.convert('RGB'))))
    image('dogs/picture.bmp', rgb, 'BMP', ('pixels', np.asarray(rgb)))
    image('dogs/lossless.webp', rgb, 'WEBP', ('pixels', np.asarray(rgb)), lossless=True)
    image('dogs/scan.tiff', rgb, 'TIFF', ('pixels', np.asarray(rgb)))
    image('dogs/nested/deeper.png', rgb, 'PNG', ('pixels', np.asarray(rgb)))
    _write_bytes(os.path.join(root, 'dogs/flower.jpg'), _sample_photo('flower.jpg'))
    expected['dogs/flower.jpg'] = 'kept'
    for index in range(2):
        picture = Image.fromarray(_pixels(3, 3, 10 + index))
        image('%s/%d.png' % (UNICODE_CLASS, index), picture, 'PNG',
              ('pixels', np.asarray(picture)))

    bad = {'cats/empty.jpg': b'', 'cats/truncated.jpg': _sample_photo('china.jpg')[:30000],
           'dogs/notes.png': b'not a picture at all', 'dogs/noise.bmp': bytes(range(256)) * 4}
    for relative, data in bad.items():
        _write_bytes(os.path.join(root, relative), data)
    for relative in ('cats/.DS_Store', 'cats/Thumbs.db', 'cats/.hidden.jpg', 'dogs/README.txt',
                     'dogs/meta.json', 'LICENSE', '.git/config'):
        _write_bytes(os.path.join(root, relative), b'x')
    return expected


@pytest.fixture(scope='module')
def mixed(tmp_path_factory):
    """A mixed folder converted once, read back with plain TensorFlow."""
    root = str(tmp_path_factory.mktemp('mixed'))
    image_dir = os.path.join(root, 'photos')
    expected = _build_mixed_folder(image_dir)
    dataset_dir = os.path.join(root, 'out')
    summary = convert_image_folder(image_dir, dataset_dir, 'mixed', validation_percentage=0,
                                   num_shards=2, max_rejected_fraction=0.5)
    records = read_records(shard_paths(dataset_dir, 'mixed', 'train'))
    return {'image_dir': image_dir, 'dataset_dir': dataset_dir, 'expected': expected,
            'summary': summary, 'records': {record['filename']: record for record in records}}


def _source_bytes(mixed: dict, relative: str) -> bytes:
    with open(os.path.join(mixed['image_dir'], relative), 'rb') as source:
        return source.read()


def test_every_image_format_becomes_a_three_channel_record(mixed):
    assert sorted(mixed['records']) == sorted(mixed['expected'])
    for relative, record in mixed['records'].items():
        with Image.open(io.BytesIO(_source_bytes(mixed, relative))) as source:
            size = source.size
        assert record['pixels'].shape == (size[1], size[0], 3), relative
        assert (record['height'], record['width']) == (size[1], size[0]), relative


def test_tensorflow_ready_jpegs_keep_their_bytes(mixed):
    for relative, expectation in mixed['expected'].items():
        if expectation == 'kept':
            record = mixed['records'][relative]
            assert record['format'] == 'jpeg'
            assert record['encoded'] == _source_bytes(mixed, relative), relative
    gray = mixed['records']['cats/gray.jpg']['pixels']
    assert np.array_equal(gray[..., 0], gray[..., 1])
    assert np.array_equal(gray[..., 0], gray[..., 2])


def test_cmyk_jpeg_is_reencoded_to_rgb_jpeg(mixed):
    record = mixed['records']['cats/cmyk.jpg']
    source = _source_bytes(mixed, 'cats/cmyk.jpg')
    with Image.open(io.BytesIO(source)) as cmyk:
        assert cmyk.mode == 'CMYK'
        reference = np.asarray(cmyk.convert('RGB')).astype(int)
    assert record['format'] == 'jpeg'
    assert record['encoded'] != source
    assert np.abs(record['pixels'].astype(int) - reference).mean() < 3


def test_decoded_pixels_of_png_records_equal_the_source(mixed):
    for relative, expectation in mixed['expected'].items():
        if isinstance(expectation, tuple):
            record = mixed['records'][relative]
            assert record['format'] == 'png', relative
            np.testing.assert_array_equal(record['pixels'], expectation[1], err_msg=relative)


def test_labels_follow_sorted_class_folders(mixed):
    classes = sorted(['cats', 'dogs', UNICODE_CLASS])
    with open(os.path.join(mixed['dataset_dir'], 'labels.txt'), encoding='utf-8') as labels:
        assert labels.read().splitlines() == ['%d:%s' % item for item in enumerate(classes)]
    for relative, record in mixed['records'].items():
        class_name = relative.split('/')[0]
        assert record['class_text'] == class_name
        assert record['label'] == classes.index(class_name)


def test_bad_files_are_rejected_with_reasons(mixed):
    with open(os.path.join(mixed['dataset_dir'], 'conversion_report.json'),
              encoding='utf-8') as report_file:
        report = json.load(report_file)
    reasons = {item['file']: item['reason'] for item in report['rejected']}
    assert sorted(reasons) == ['cats/empty.jpg', 'cats/truncated.jpg', 'dogs/noise.bmp',
                               'dogs/notes.png']
    assert reasons['cats/empty.jpg'] == 'empty file'
    assert 'truncated' in reasons['cats/truncated.jpg']
    assert 'not an image' in reasons['dogs/notes.png']
    assert report['status'] == 'complete'
    assert report['per_class']['cats'] == {'converted': 7, 'rejected': 2}


def test_hidden_and_non_image_files_are_skipped(mixed):
    skipped = {item.path: item.reason for item in mixed['summary'].skipped}
    assert sorted(skipped) == ['.git/', 'LICENSE', 'cats/.DS_Store', 'cats/.hidden.jpg',
                               'cats/Thumbs.db', 'dogs/README.txt', 'dogs/meta.json']
    assert skipped['cats/.DS_Store'] == 'hidden file'
    assert skipped['LICENSE'] == 'not inside a class folder'


def test_dataset_info_describes_the_shards(mixed):
    with open(os.path.join(mixed['dataset_dir'], 'dataset_info.json'),
              encoding='utf-8') as info_file:
        info = json.load(info_file)
    assert info['format_version'] == 1
    assert info['name'] == 'mixed'
    assert info['num_classes'] == 3
    assert info['classes'] == sorted(['cats', 'dogs', UNICODE_CLASS])
    assert info['splits'] == {'train': len(mixed['expected'])}
    assert info['file_pattern'] == 'mixed_%s_*.tfrecord'
    assert info['image_format'] == 'mixed'
    assert [os.path.basename(path) for path in shard_paths(mixed['dataset_dir'], 'mixed', 'train')
            ] == ['mixed_train_00000-of-00002.tfrecord', 'mixed_train_00001-of-00002.tfrecord']


def _build_small_folder(root: str, class_sizes: dict[str, int]) -> str:
    for class_index, (class_name, size) in enumerate(class_sizes.items()):
        for index in range(size):
            path = os.path.join(root, class_name, 'img_%02d.png' % index)
            _save(path, Image.fromarray(_pixels(4, 5, 100 * class_index + index)), 'PNG')
    return root


@pytest.fixture
def small_folder(tmp_path) -> str:
    return _build_small_folder(str(tmp_path / 'small'), {'ant': 10, 'bee': 10, 'cow': 5})


def _files(directory: str) -> dict[str, bytes]:
    contents = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), 'rb') as stored:
            contents[name] = stored.read()
    return contents


def test_validation_split_is_stratified(small_folder, tmp_path):
    dataset_dir = str(tmp_path / 'out')
    convert_image_folder(small_folder, dataset_dir, 'small', validation_percentage=20,
                         num_shards=3)
    train = read_records(shard_paths(dataset_dir, 'small', 'train'))
    validation = read_records(shard_paths(dataset_dir, 'small', 'validation'))
    assert len(shard_paths(dataset_dir, 'small', 'validation')) == 3
    train_names = {record['filename'] for record in train}
    validation_names = {record['filename'] for record in validation}
    assert not train_names & validation_names
    assert len(train_names | validation_names) == 25
    assert len(validation) == round(25 * 0.2)
    for label, size in enumerate([10, 10, 5]):
        held_out = sum(record['label'] == label for record in validation)
        assert int(size * 0.2) <= held_out <= int(size * 0.2) + 1


def test_same_input_gives_identical_bytes_with_any_worker_count(small_folder, tmp_path):
    first, second = str(tmp_path / 'first'), str(tmp_path / 'second')
    convert_image_folder(small_folder, first, 'small', num_shards=3)
    convert_image_folder(small_folder, second, 'small', num_shards=3, num_workers=2)
    assert _files(first) == _files(second)
    assert len(shard_paths(first, 'small', 'train')) == 3


def test_zero_validation_percentage_writes_only_train(small_folder, tmp_path):
    dataset_dir = str(tmp_path / 'out')
    summary = convert_image_folder(small_folder, dataset_dir, 'small', validation_percentage=0,
                                   num_shards=1)
    assert summary.split_sizes == {'train': 25}
    assert not shard_paths(dataset_dir, 'small', 'validation')


_KILLED_CONVERSION = textwrap.dedent('''
    import os, signal, sys
    from datasets.convert_image_folder import convert_image_folder

    def die_midway(task, done, total, unit):
        if done == 4:
            os.kill(os.getpid(), signal.SIGKILL)

    convert_image_folder(sys.argv[1], sys.argv[2], 'small', num_shards=2,
                         progress=die_midway)
''')


def test_interrupted_conversion_never_looks_complete_and_a_rerun_completes(
        small_folder, tmp_path):
    dataset_dir = str(tmp_path / 'out')
    convert_image_folder(small_folder, dataset_dir, 'small', num_shards=3)
    killed = subprocess.run([sys.executable, '-c', _KILLED_CONVERSION, small_folder, dataset_dir],
                            cwd=REPO_ROOT, capture_output=True, check=False)
    assert killed.returncode == -signal.SIGKILL
    left = os.listdir(dataset_dir)
    assert 'dataset_info.json' not in left
    assert any(name.endswith('.partial') for name in left)
    # The shards of the earlier, 3-shard conversion are gone, and the agreed
    # file pattern never matches a partial shard.
    assert not any('-of-00003' in name for name in left)
    assert all(path.endswith('.tfrecord') for path in shard_paths(dataset_dir, 'small', 'train'))

    convert_image_folder(small_folder, dataset_dir, 'small', num_shards=2)
    fresh = str(tmp_path / 'fresh')
    convert_image_folder(small_folder, fresh, 'small', num_shards=2)
    assert _files(dataset_dir) == _files(fresh)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, 'download_and_convert_data.py', *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def test_cli_fails_after_writing_its_report_when_too_many_files_are_rejected(tmp_path):
    image_dir = _build_small_folder(str(tmp_path / 'photos'), {'ant': 3, 'bee': 3})
    _write_bytes(os.path.join(image_dir, 'bee', 'broken.png'), b'\x89PNG\r\n\x1a\n')
    dataset_dir = str(tmp_path / 'out')
    result = _run_cli('--dataset_name=pets', '--image_dir=' + image_dir,
                      '--dataset_dir=' + dataset_dir, '--num_shards=1')
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and '--max_rejected_fraction' in errors[0]
    assert 'converting pets: 7 of 7 images' in result.stderr
    assert 'Converted 6 images' in result.stdout
    with open(os.path.join(dataset_dir, 'conversion_report.json'), encoding='utf-8') as report:
        rejected = json.load(report)['rejected']
    assert [item['file'] for item in rejected] == ['bee/broken.png']
    assert not os.path.exists(os.path.join(dataset_dir, 'dataset_info.json'))


def test_cli_reports_bad_input_in_one_line(tmp_path):
    missing = str(tmp_path / 'missing')
    result = _run_cli('--dataset_name=pets', '--image_dir=' + missing,
                      '--dataset_dir=' + str(tmp_path / 'out'))
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert errors == ["error: --image_dir %r does not exist" % missing]


def test_too_many_rejected_raises_after_writing_the_report(tmp_path):
    image_dir = _build_small_folder(str(tmp_path / 'photos'), {'ant': 2, 'bee': 1})
    _write_bytes(os.path.join(image_dir, 'ant', 'broken.jpg'), b'\xff\xd8\xff')
    dataset_dir = str(tmp_path / 'out')
    with pytest.raises(TooManyRejectedError, match='1 of 4 image files'):
        convert_image_folder(image_dir, dataset_dir, 'pets', validation_percentage=0,
                             max_rejected_fraction=0.2)
    with open(os.path.join(dataset_dir, 'conversion_report.json'), encoding='utf-8') as report:
        assert json.load(report)['status'].startswith('failed')
    assert not os.path.exists(os.path.join(dataset_dir, 'dataset_info.json'))


@pytest.mark.parametrize('arguments, message', [
    ({'image_dir': 'MISSING'}, r"--image_dir '.*missing' does not exist"),
    ({'image_dir': 'EMPTY'}, r"--image_dir '.*empty' has no class sub-folders"),
    ({'validation_percentage': 120}, r'--validation_percentage must be in \[0, 100\); got 120'),
    ({'num_shards': 0}, r'--num_shards must be >= 1; got 0'),
    ({'num_workers': 0}, r'--num_workers must be >= 1; got 0'),
    ({'max_rejected_fraction': 1.5}, r'--max_rejected_fraction must be in \[0, 1\]; got 1.5'),
    ({'max_image_bytes': 0}, r'--max_image_bytes must be >= 1; got 0'),
    ({'name': 'a/b'}, r"--dataset_name must be .*; got 'a/b'"),
    ({'dataset_dir': 'INSIDE'}, r'--dataset_dir .* must not be inside --image_dir'),
    ({'image_dir': 'NO_IMAGES'}, r"class folder 'ant' in --image_dir has no image files"),
    ({'image_dir': 'ONE_CLASS'},
     r"--image_dir '.*one_class' has one class folder, 'ant'; a classifier needs at least two"),
    ({'validation_percentage': 1},
     r'--validation_percentage 1 of the 25 image files holds out none of them, so the '
     r'validation split would be empty; use at least 2, or 0 for no validation split'),
    ({'validation_percentage': 99}, r'--validation_percentage 99 holds out all 25 image files, '
                                    r'leaving none to train on'),
    ({'validation_count': 25}, r'validation_count 25 holds out all 25 image files'),
])
def test_bad_arguments_raise_one_clear_line(small_folder, tmp_path, arguments, message):
    os.makedirs(tmp_path / 'empty')
    _build_small_folder(str(tmp_path / 'no_images'), {'bee': 1})
    _write_bytes(str(tmp_path / 'no_images' / 'ant' / 'notes.txt'), b'x')
    one_class = _build_small_folder(str(tmp_path / 'one_class'), {'ant': 3})
    places = {'MISSING': str(tmp_path / 'missing'), 'EMPTY': str(tmp_path / 'empty'),
              'NO_IMAGES': str(tmp_path / 'no_images'), 'ONE_CLASS': one_class,
              'INSIDE': os.path.join(small_folder, 'out')}
    call = {'image_dir': small_folder, 'dataset_dir': str(tmp_path / 'out'), 'name': 'pets'}
    call.update({key: places.get(value, value) for key, value in arguments.items()})
    with pytest.raises(ValueError, match=message) as raised:
        convert_image_folder(call.pop('image_dir'), call.pop('dataset_dir'), call.pop('name'),
                             **call)
    assert '\n' not in str(raised.value)
    # Refused before anything is written.
    assert not os.path.exists(tmp_path / 'out')


def test_progress_printer_shows_rate_and_the_final_update():
    output = io.StringIO()
    times = iter([0.0, 0.5, 1.0, 4.0, 10.0, 10.001])
    printer = ProgressPrinter(output, interval=2.0, clock=lambda: next(times))
    for done in (0, 1, 2, 4):
        printer('converting x', done, 4, 'images')
    printer('converting y', 0, 500, 'images')
    printer('converting y', 500, 500, 'images')  # 1 ms later: no rate to speak of
    lines = output.getvalue().splitlines()
    assert lines == ['converting x: 0 of 4 images',
                     'converting x: 4 of 4 images (1.0 images/s)',
                     'converting y: 0 of 500 images',
                     'converting y: 500 of 500 images']


def test_reconverting_a_dataset_keeps_the_shards_of_another_whose_name_it_prefixes(
        small_folder, tmp_path):
    dataset_dir = str(tmp_path / 'out')
    convert_image_folder(small_folder, dataset_dir, 'small_copy', num_shards=2)
    theirs = sorted(name for name in os.listdir(dataset_dir) if name.startswith('small_copy_'))
    assert theirs
    convert_image_folder(small_folder, dataset_dir, 'small', num_shards=2)
    convert_image_folder(small_folder, dataset_dir, 'small', num_shards=1)
    names = os.listdir(dataset_dir)
    assert sorted(name for name in names if name.startswith('small_copy_')) == theirs
    assert not any(re.fullmatch(r'small_[a-z]+_\d+-of-00002\.tfrecord', name) for name in names)
