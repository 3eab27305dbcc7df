"""Installed beside a distribution that also ships a top-level `datasets`: one clear line."""

import os
import shutil
import subprocess
import sys
import textwrap

from tests import training_helpers as helpers


def _pip_install(target, project, *extra):
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                    '--no-build-isolation', '--target', str(target), *extra, str(project)],
                   check=True, capture_output=True, text=True, timeout=300)


def _fake_datasets_project(root):
    project = root / 'fake_datasets'
    (project / 'datasets').mkdir(parents=True)
    (project / 'datasets' / '__init__.py').write_text('"""Someone else\'s datasets."""\n')
    (project / 'setup.py').write_text(textwrap.dedent('''\
        from setuptools import setup
        setup(name='datasets', version='9.9.9', packages=['datasets'])
        '''))
    return project


def _import_slim_classifier(site, cwd):
    return subprocess.run([sys.executable, '-c', 'import slim_classifier'], cwd=str(cwd),
                          env={**os.environ, 'PYTHONPATH': str(site)}, capture_output=True,
                          text=True, timeout=120)


def _source_copy(root):
    """The project's source, copied: building it in place would leave build/ in the checkout."""
    source = root / 'source'
    shutil.copytree(helpers.REPO, source, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'build', 'demo_output', '*.egg-info', '__pycache__', 'tests'))
    return source


def test_a_colliding_datasets_distribution_is_named_at_import(tmp_path):
    site = tmp_path / 'site'
    _pip_install(site, _source_copy(tmp_path))
    clean = _import_slim_classifier(site, tmp_path)
    assert clean.returncode == 0, clean.stderr[-2000:]

    _pip_install(site, _fake_datasets_project(tmp_path), '--upgrade')
    result = _import_slim_classifier(site, tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('slim_classifier.packaging.PackageCollision: the top-level package '
                           "'datasets' of slim-image-classifier is also installed by the "
                           'distribution datasets 9.9.9; install slim-image-classifier in a '
                           'virtual environment of its own')


def test_a_checkout_shadowing_an_installed_namesake_is_fine(tmp_path):
    site = tmp_path / 'site'
    _pip_install(site, _fake_datasets_project(tmp_path))
    result = _import_slim_classifier(site, helpers.REPO)
    assert result.returncode == 0, result.stderr[-2000:]
