"""Shared test set-up: quiet TensorFlow, shared datasets."""

import os

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
