"""Shared test set-up: quiet TensorFlow, shared datasets."""

import os
import subprocess

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@pytest.fixture(scope='session')
def digits_dir(tmp_path_factory):
    """The embedded digits dataset, converted once per test process."""
    from tests.training_helpers import run_command
    directory = tmp_path_factory.mktemp('digits')
    run_command('download_and_convert_data.py', '--dataset_name=digits',
                '--dataset_dir=%s' % directory)
    return str(directory)


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(name, size) -> the path of a new tmpfs of `size` (e.g. '1m'); unmounted after.

    Mounting needs root or CAP_SYS_ADMIN: `make test` runs the suite as root in
    a user and mount namespace of its own when it is not root already. Where a
    mount is refused all the same, the test fails saying so (a skipped test
    would prove nothing).
    """
    mounted = []

    def mount(name, size):
        path = tmp_path / name
        path.mkdir()
        result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=' + size, 'tmpfs',
                                 str(path)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail('cannot mount a tmpfs to fill (it needs root or CAP_SYS_ADMIN; run the '
                        'tests through `make test`, or `unshare --user --map-root-user --mount`):'
                        ' %s' % ' '.join(result.stderr.split()))
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(['umount', str(path)], check=True)
