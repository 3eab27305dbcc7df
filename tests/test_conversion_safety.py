"""The converter against a hostile file system and a careless user.

A second conversion of a locked directory, FIFOs and devices among the
photos, rotated photos, options that leave nothing to write, a full disk and
links planted at the converter's temporary names: each is met with one clear
line or a rejection in the report, and the user's files stay as they were.
"""

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from datasets import dataset_lock, tfrecord_writing
from datasets.convert_image_folder import convert_image_folder
from tests.test_convert_image_folder import REPO_ROOT, _build_small_folder, _files, _run_cli, _save
from tests.tfrecord_reading import read_records, shard_paths

# Takes the lock of argv[1] as a converter would, says so, and holds it until stdin closes.
_LOCK_HOLDER = textwrap.dedent('''
    import sys
    from datasets import dataset_lock
    with dataset_lock.locked(sys.argv[1]):
        print('locked', flush=True)
        sys.stdin.read()
''')

# Holds the lock and forks a child that outlives it (as a decoding worker
# would); the child prints its pid, the holder waits to be killed.
_FORKING_HOLDER = textwrap.dedent('''
    import os, sys, time
    from datasets import dataset_lock
    with dataset_lock.locked(sys.argv[1]):
        if os.fork() == 0:
            # The fork hooks have run by now: the child says so itself, so the
            # test cannot kill the holder while the child still has its copy.
            print(os.getpid(), flush=True)
            time.sleep(60)
            os._exit(0)
        sys.stdin.read()
''')

# Prepares each path of argv[2:] with max_bytes argv[1]; prints the results as JSON.
_PREPARE = textwrap.dedent('''
    import json, sys
    from datasets.image_preparation import Rejection, prepare_image_file
    results = [prepare_image_file(path, int(sys.argv[1])) for path in sys.argv[2:]]
    print(json.dumps([result.reason if isinstance(result, Rejection) else 'ok'
                      for result in results]))
''')


def _start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-c', script, *args], cwd=REPO_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=30)
    process.stdin.close()
    process.stdout.close()


def _snapshot(directory: str) -> dict[str, bytes | str]:
    """Everything below `directory`: file contents, link targets and folders, by path."""
    found = {}
    for folder, subfolders, files in os.walk(directory):
        for name in subfolders + files:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, directory)
            if os.path.islink(path):
                found[key] = 'link to ' + os.readlink(path)
            elif os.path.isdir(path):
                found[key] = 'folder'
            else:
                with open(path, 'rb') as stored:
                    found[key] = stored.read()
    return found


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert 'Traceback' not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith('error:')]


@pytest.fixture
def two_classes(tmp_path) -> str:
    return _build_small_folder(str(tmp_path / 'photos'), {'ant': 3, 'bee': 3})


def test_a_second_conversion_is_refused_in_one_line_and_changes_nothing(two_classes, tmp_path):
    dataset_dir = str(tmp_path / 'out')
    convert_image_folder(two_classes, dataset_dir, 'pets', num_shards=1)
    holder = _start(_LOCK_HOLDER, dataset_dir)
    try:
        assert holder.stdout.readline() == 'locked\n'
        before = _snapshot(dataset_dir)
        result = _run_cli('--dataset_name=pets', '--image_dir=' + two_classes,
                          '--dataset_dir=' + dataset_dir, '--num_shards=1')
        assert result.returncode == 1
        errors = _error_lines(result)
        assert len(errors) == 1
        assert errors[0].startswith("error: --dataset_dir %r is being converted by process %d "
                                    'on ' % (dataset_dir, holder.pid))
        assert '(since 20' in errors[0] and ' -c ' + dataset_dir in errors[0]
        assert 'wait for that conversion to end, or stop it, then run again' in errors[0]
        assert _snapshot(dataset_dir) == before
        assert 'dataset_info.json' in before
    finally:
        _stop(holder)


def test_a_killed_holder_leaves_the_directory_unlocked(two_classes, tmp_path):
    dataset_dir = str(tmp_path / 'out')
    holder = _start(_LOCK_HOLDER, dataset_dir)
    try:
        assert holder.stdout.readline() == 'locked\n'
        with pytest.raises(dataset_lock.DatasetLockedError, match='process %d' % holder.pid):
            convert_image_folder(two_classes, dataset_dir, 'pets', num_shards=1)
        assert os.listdir(dataset_dir) == ['.conversion.lock']
    finally:
        _stop(holder)
    assert holder.returncode == -signal.SIGKILL
    with open(os.path.join(dataset_dir, '.conversion.lock'), encoding='utf-8') as lock_file:
        assert json.load(lock_file)['pid'] == holder.pid  # Left by the killed holder.
    summary = convert_image_folder(two_classes, dataset_dir, 'pets', num_shards=1)
    assert summary.converted == 6
    assert not os.path.exists(os.path.join(dataset_dir, '.conversion.lock'))


def test_processes_forked_by_a_killed_holder_do_not_keep_the_lock(tmp_path):
    dataset_dir = str(tmp_path / 'out')
    holder = _start(_FORKING_HOLDER, dataset_dir)
    child = None
    try:
        child = int(holder.stdout.readline())
        _stop(holder)
        os.kill(child, 0)  # The forked child still runs ...
        with dataset_lock.locked(dataset_dir):  # ... yet the lock is free.
            with dataset_lock.locked(dataset_dir):  # And re-entrant.
                pass
    finally:
        if holder.returncode is None:
            _stop(holder)
        if child is not None:
            os.kill(child, signal.SIGKILL)


def _special_files(root: str) -> dict[str, str]:
    """Adds a FIFO, a link to /dev/zero and an oversized image to a class folder."""
    os.mkfifo(os.path.join(root, 'ant', 'p.png'))
    os.symlink('/dev/zero', os.path.join(root, 'ant', 'x.jpg'))
    _save(os.path.join(root, 'bee', 'big.png'),
          Image.fromarray(np.random.RandomState(7).randint(0, 256, (40, 40, 3), np.uint8)), 'PNG')
    return {'ant/p.png': 'not a regular file (a FIFO (named pipe)); only regular files are read',
            'ant/x.jpg': 'not a regular file (a character device); only regular files are read',
            'bee/big.png': '%d bytes, more than --max_image_bytes 2000'
                           % os.path.getsize(os.path.join(root, 'bee', 'big.png'))}


def _limit_memory() -> None:
    # A regression that reads /dev/zero fails fast instead of filling the machine.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_fifos_devices_and_oversized_files_are_rejected_unread(two_classes):
    reasons = _special_files(two_classes)
    paths = [os.path.join(two_classes, relative) for relative in reasons]
    result = subprocess.run([sys.executable, '-c', _PREPARE, '2000', *paths,
                             os.path.join(two_classes, 'ant', 'img_00.png')],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                            preexec_fn=_limit_memory, check=True)
    assert json.loads(result.stdout) == list(reasons.values()) + ['ok']


def test_cli_reports_special_files_as_rejected(two_classes, tmp_path):
    reasons = _special_files(two_classes)
    dataset_dir = str(tmp_path / 'out')
    result = subprocess.run(
        [sys.executable, 'download_and_convert_data.py', '--dataset_name=pets',
         '--image_dir=' + two_classes, '--dataset_dir=' + dataset_dir, '--num_shards=1',
         '--max_image_bytes=2000', '--max_rejected_fraction=0.5', '--num_workers=2'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(dataset_dir, 'conversion_report.json'), encoding='utf-8') as report:
        rejected = json.load(report)['rejected']
    assert {item['file']: item['reason'] for item in rejected} == reasons
    assert 'Rejected 3 files' in result.stdout


def test_photos_are_stored_upright(tmp_path):
    image_dir = _build_small_folder(str(tmp_path / 'photos'), {'ant': 1, 'bee': 1})
    # 20 wide, 10 high: dark left half, bright right half. Orientation 6 says
    # "turn 90 degrees clockwise to view", which puts the left half on top.
    pixels = np.full((10, 20, 3), 230, np.uint8)
    pixels[:, :10] = 20
    exif = Image.Exif()
    exif[0x0112] = 6
    turned_path = os.path.join(image_dir, 'ant', 'turned.jpg')
    _save(turned_path, Image.fromarray(pixels), 'JPEG', exif=exif.tobytes())
    plain_path = os.path.join(image_dir, 'bee', 'plain.jpg')
    _save(plain_path, Image.fromarray(pixels), 'JPEG')
    dataset_dir = str(tmp_path / 'out')
    summary = convert_image_folder(image_dir, dataset_dir, 'pets', validation_percentage=0,
                                   num_shards=1)
    records = {record['filename']: record
               for record in read_records(shard_paths(dataset_dir, 'pets', 'train'))}
    turned = records['ant/turned.jpg']
    assert turned['pixels'].shape == (20, 10, 3)
    assert (turned['height'], turned['width'], turned['format']) == (20, 10, 'jpeg')
    assert turned['pixels'][:10].mean() < 40 < 210 < turned['pixels'][10:].mean()
    with open(turned_path, 'rb') as source:
        assert turned['encoded'] != source.read()
    plain = records['bee/plain.jpg']
    assert plain['pixels'].shape == (10, 20, 3)
    with open(plain_path, 'rb') as source:
        assert plain['encoded'] == source.read()
    assert summary.turned_upright == 1
    with open(os.path.join(dataset_dir, 'conversion_report.json'), encoding='utf-8') as report:
        assert json.load(report)['turned_upright'] == 1
    assert 'Turned 1 images upright, as their EXIF orientation says.' in summary.summary_lines()


def test_more_shards_and_workers_than_images_are_cut_down_with_a_warning(tmp_path, caplog):
    image_dir = _build_small_folder(str(tmp_path / 'photos'), {'ant': 2, 'bee': 2})
    many, one = str(tmp_path / 'many'), str(tmp_path / 'one')
    with caplog.at_level(logging.WARNING, logger='convert'):
        convert_image_folder(image_dir, many, 'pets', validation_percentage=25, num_shards=10,
                             num_workers=9)
    assert [record.getMessage() for record in caplog.records] == [
        '--num_workers 9 is more than the 4 image files; starting 4',
        '--num_shards 10 is more than the 3 train images; writing 3 train shards instead of '
        'empty ones',
        '--num_shards 10 is more than the 1 validation images; writing 1 validation shards '
        'instead of empty ones']
    train = shard_paths(many, 'pets', 'train')
    assert [os.path.basename(path) for path in train] == [
        'pets_train_%05d-of-00003.tfrecord' % index for index in range(3)]
    assert all(len(read_records([path])) == 1 for path in train)
    assert len(shard_paths(many, 'pets', 'validation')) == 1
    convert_image_folder(image_dir, one, 'pets', validation_percentage=25, num_shards=10)
    assert _files(many) == _files(one)


@pytest.fixture
def full_disk(mount_tmpfs):
    """A 64 KiB tmpfs, unmounted afterwards."""
    return str(mount_tmpfs('tiny', '64k'))


def test_a_full_disk_stops_the_conversion_in_one_line_and_keeps_the_users_files(
        full_disk, tmp_path):
    image_dir = str(tmp_path / 'photos')
    for class_index, class_name in enumerate(('ant', 'bee')):
        for index in range(6):
            noise = np.random.RandomState(10 * class_index + index).randint(
                0, 256, (64, 64, 3), np.uint8)  # About 12 KiB as PNG: 12 fill the disk.
            _save(os.path.join(image_dir, class_name, '%d.png' % index),
                  Image.fromarray(noise), 'PNG')
    with open(os.path.join(full_disk, 'notes.txt'), 'w', encoding='utf-8') as notes:
        notes.write('mine')
    os.makedirs(os.path.join(full_disk, 'keep'))
    before = _snapshot(full_disk)
    result = _run_cli('--dataset_name=pets', '--image_dir=' + image_dir,
                      '--dataset_dir=' + full_disk, '--num_shards=2')
    assert result.returncode == 1
    errors = _error_lines(result)
    assert len(errors) == 1
    assert errors[0].startswith('error: cannot write %s/pets_train_' % full_disk)
    assert 'the disk is full (No space left on device)' in errors[0]
    assert _snapshot(full_disk) == before


def test_a_link_planted_at_a_temporary_shard_name_is_never_written_through(
        two_classes, tmp_path):
    users_file = tmp_path / 'precious.txt'
    users_file.write_text('mine')
    dataset_dir = tmp_path / 'out'
    dataset_dir.mkdir()
    partial = dataset_dir / ('pets_train_00000-of-00001.tfrecord' +
                             tfrecord_writing.PARTIAL_SUFFIX)
    partial.symlink_to(users_file)
    summary = convert_image_folder(two_classes, str(dataset_dir), 'pets', num_shards=1)
    assert summary.converted == 6
    assert users_file.read_text() == 'mine'

    # Planted after the conversion has started, the link is refused and kept.
    partial.symlink_to(users_file)
    writer = tfrecord_writing.SplitWriter(str(dataset_dir), 'pets', 'train', 1, 1)
    with pytest.raises(FileExistsError, match='already exists, but the conversion writes a '
                                              'shard there; it is left as it is'):
        with writer:
            writer.add(b'record')
    assert users_file.read_text() == 'mine'
    assert os.readlink(partial) == str(users_file)


def test_the_temporaries_of_an_interrupted_metadata_write_are_removed(two_classes, tmp_path):
    dataset_dir = tmp_path / 'out'
    dataset_dir.mkdir()
    # What a converter killed inside write_atomically leaves, beside a user's look-alike.
    stale = [dataset_dir / '.labels.txt.tmp-320e2493',
             dataset_dir / '.dataset_info.json.tmp-0a1b2c3d']
    for path in stale:
        path.write_text('half')
    (dataset_dir / '.labels.txt.tmp-mine').write_text('mine')
    convert_image_folder(two_classes, str(dataset_dir), 'pets', num_shards=1)
    assert not any(path.exists() for path in stale)
    assert (dataset_dir / '.labels.txt.tmp-mine').read_text() == 'mine'


def test_a_lock_name_taken_by_a_link_is_refused_and_kept(tmp_path):
    users_file = tmp_path / 'precious.txt'
    users_file.write_text('mine')
    dataset_dir = tmp_path / 'out'
    dataset_dir.mkdir()
    (dataset_dir / '.conversion.lock').symlink_to(users_file)
    with pytest.raises(FileExistsError, match='is not a plain file, but the conversion lock'):
        with dataset_lock.locked(str(dataset_dir)):
            pass
    assert users_file.read_text() == 'mine'
