"""Refuses to run beside another distribution that installs our shared top-level packages.

To keep the import paths TF-Slim users' code relies on (`from datasets import
dataset_factory`, `from nets import nets_factory`, ...), four packages are
installed at the top level of site-packages. One of those names is also a
popular distribution (`datasets`); pip puts both into one directory, and
whichever was installed last wins file by file. `check_shared_packages` finds
that at import, cheaply, and says what to do in one line.
"""

import importlib
import os
from importlib import metadata

SHARED_PACKAGES = ('datasets', 'nets', 'preprocessing', 'deployment')
MARKER = '__slim_image_classifier__'  # set in each shared package's __init__.py


class PackageCollision(ImportError):
    """Another distribution installed files into one of our shared top-level packages."""


def _distribution_named(package: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return None


def _same_directory(first: str, second: str) -> bool:
    return os.path.realpath(os.path.dirname(first)) == os.path.realpath(os.path.dirname(second))


def check_shared_packages() -> None:
    """Raises PackageCollision if a shared package is not ours alone.

    A package collides when a distribution named like it installed its files
    in the very directory Python imports the package from, or when that
    directory's __init__.py is not ours (another distribution was installed
    over it). A checkout that shadows an installed namesake is fine.
    """
    for package in SHARED_PACKAGES:
        module = importlib.import_module(package)
        location = getattr(module, '__file__', None) or package
        other = _distribution_named(package)
        if other is not None and _same_directory(
                str(other.locate_file(package + '/__init__.py')), location):
            found = 'the distribution %s %s' % (other.metadata['Name'], other.version)
        elif not getattr(module, MARKER, False):
            found = 'another distribution (its %s is imported)' % location
        else:
            continue
        raise PackageCollision(
            "the top-level package '%s' of slim-image-classifier is also installed by %s; "
            'install slim-image-classifier in a virtual environment of its own (python -m '
            'venv), or run it from its checkout, where its own package comes first'
            % (package, found))
