"""Downloads a published TF-Slim checkpoint and checks it: fetch_pretrained.py --model_name=resnet_v1_50

    python fetch_pretrained.py --model_name=resnet_v1_50 --checkpoint_dir=/ckpt

The archive named in the zoo table (nets/zoo.py) is downloaded from the folder
it was published in (or from --base_url, a mirror; resuming a download that was interrupted, with progress), extracted, and
checked by content: it must hold exactly the model variables of the net, in
their shapes. The archive's path is printed; give it as --checkpoint_path to
any command.
"""

import dataclasses
import logging
import os
import shutil

from slim_classifier.cli import flags, runner
from slim_classifier.runtime.options import option, validate

SUMMARY = """Downloads a published checkpoint archive and checks it against its net.

  fetch_pretrained.py --model_name=resnet_v1_50 --checkpoint_dir=DIR

The archive's path is printed: give it as --checkpoint_path to train, eval, export or
classify."""

# Where TF-Slim's 2016-2017 archives (Inception, ResNet, VGG, NASNet, PNASNet) were published.
PUBLISHED_BASE_URL = 'https://storage.googleapis.com/download.tensorflow.org/models/'
# The MobileNet archives were published in release folders of their own, by name prefix.
_PUBLISHED_FOLDERS = (
    ('mobilenet_v1_', PUBLISHED_BASE_URL + 'mobilenet_v1_2018_08_02/'),
    ('mobilenet_v2_', 'https://storage.googleapis.com/mobilenet_v2/checkpoints/'),
    ('v3-', 'https://storage.googleapis.com/mobilenet_v3/checkpoints/'),
    ('mobilenet_edgetpu_', 'https://storage.googleapis.com/mobilenet_edgetpu/checkpoints/'),
)

log = logging.getLogger('fetch')


@dataclasses.dataclass(kw_only=True)
class FetchOptions:
    model_name: str | None = option(None, 'The net whose published checkpoint to fetch.', 'model',
                                    required=True)
    checkpoint_dir: str | None = option(None, 'Where the archive is stored (and extracted).',
                                        'output', required=True)
    base_url: str | None = option(None, 'The URL of a folder holding the archive under its '
                                  'published name (a mirror); by default the folder it was '
                                  'published in.', 'data')

    def __post_init__(self):
        validate(self)


flags.define_flags(FetchOptions)


def published_url(archive: str) -> str:
    """The URL a published archive was released at."""
    for prefix, folder in _PUBLISHED_FOLDERS:
        if archive.startswith(prefix):
            return folder + archive
    return PUBLISHED_BASE_URL + archive


def fetch(options: FetchOptions) -> str:
    """Downloads and checks the archive of `options.model_name`; returns its path.

    Raises:
      ValueError: for a net without a published checkpoint, or an archive whose
        variables are not the net's (it is removed then).
      DownloadError, ArchiveError: for a failed download or a broken archive.
    """
    from datasets.download import download_and_open
    from datasets.progress import ProgressPrinter
    from nets import nets_factory
    from nets.zoo import ZOO
    from slim_classifier.runtime import pretrained
    nets_factory.get_network_spec(options.model_name)
    entry = ZOO[options.model_name]
    if entry.archive is None:
        published = sorted(name for name, known in ZOO.items() if known.archive)
        raise ValueError('--model_name=%s has no published checkpoint; these have one: %s'
                         % (options.model_name, ', '.join(published)))
    path = os.path.join(options.checkpoint_dir, entry.archive)
    # A cached archive that does not open is set aside and downloaded again, once.
    url = (published_url(entry.archive) if options.base_url is None
           else options.base_url.rstrip('/') + '/' + entry.archive)
    checkpoint = download_and_open(url, path,
                                   None, pretrained.extracted_checkpoint,
                                   progress=ProgressPrinter(), resume=True)
    problem = _mismatch(options.model_name, entry.num_classes, checkpoint)
    if problem:
        os.remove(path)
        shutil.rmtree(path + pretrained.EXTRACTED_SUFFIX)
        raise ValueError('%s does not hold the published variables of %s (%s); it was removed'
                         % (entry.archive, options.model_name, problem))
    log.info('%s holds every model variable of %s', checkpoint, options.model_name)
    return path


def _mismatch(model_name: str, num_classes: int, checkpoint: str) -> str | None:
    """What keeps `checkpoint` from restoring `model_name`'s model variables, or None."""
    import tensorflow.compat.v1 as tf
    from nets import nets_factory
    from slim_classifier.compat import slim
    from slim_classifier.runtime import checkpoints
    network_fn = nets_factory.get_network_fn(model_name, num_classes)
    size = network_fn.default_image_size
    channels = nets_factory.get_network_spec(model_name).num_channels
    with tf.Graph().as_default():
        network_fn(tf.placeholder(tf.float32, [1, size, size, channels]))
        wanted = {v.op.name: v.shape.as_list() for v in slim.get_model_variables()}
    return checkpoints.mismatch(checkpoint, wanted)


def main(argv):
    del argv
    print(fetch(FetchOptions(**flags.config_values(FetchOptions))))


def run():
    runner.run_command(main, SUMMARY, (FetchOptions,))


if __name__ == '__main__':
    run()
