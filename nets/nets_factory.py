"""The one registry of networks: name -> builder, arg_scope, image size, preprocessing.

Every other part of the project (training, evaluation, export, preprocessing
choice, benchmarks, tests) reads the networks from `NETWORKS`; adding a net
is one `_register` call.
"""

import dataclasses
import difflib
import functools
from collections.abc import Callable

import tensorflow.compat.v1 as tf

from slim_compat import slim
from nets import alexnet, cifarnet, inception_utils, lenet, vgg
from nets import inception_v1, inception_v2, inception_v3, inception_v4

# (logits, end_points) = network_fn(images)
NetworkFn = Callable[..., tuple[tf.Tensor, dict[str, tf.Tensor]]]


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """How to build one network and what it expects as input."""
    name: str
    builder: Callable[..., tuple[tf.Tensor, dict[str, tf.Tensor]]]
    arg_scope: Callable[..., dict]
    default_image_size: int
    preprocessing_name: str
    num_channels: int = 3
    # The class count of the public checkpoints, used when none is given.
    default_num_classes: int = 1000


NETWORKS: dict[str, NetSpec] = {}


def _register(spec: NetSpec) -> None:
    if spec.name in NETWORKS:
        raise ValueError('network %r is registered twice' % spec.name)
    NETWORKS[spec.name] = spec


_register(NetSpec('lenet', lenet.lenet, lenet.lenet_arg_scope, 28, 'lenet',
                  num_channels=1, default_num_classes=10))
_register(NetSpec('cifarnet', cifarnet.cifarnet, cifarnet.cifarnet_arg_scope, 32,
                  'cifarnet', default_num_classes=10))
_register(NetSpec('alexnet_v2', alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, 224,
                  'vgg'))
for _name in ('vgg_a', 'vgg_16', 'vgg_19'):
    _register(NetSpec(_name, getattr(vgg, _name), vgg.vgg_arg_scope, 224, 'vgg'))
_register(NetSpec('inception_v1', inception_v1.inception_v1,
                  inception_utils.inception_arg_scope, 224, 'inception'))
_register(NetSpec('inception_v2', inception_v2.inception_v2,
                  inception_utils.inception_arg_scope, 224, 'inception'))
_register(NetSpec('inception_v3', inception_v3.inception_v3,
                  inception_utils.inception_arg_scope, 299, 'inception'))
_register(NetSpec('inception_v4', inception_v4.inception_v4,
                  inception_utils.inception_arg_scope, 299, 'inception',
                  default_num_classes=1001))


def list_networks() -> list[str]:
    """The registered network names, sorted."""
    return sorted(NETWORKS)


def get_network_spec(name: str) -> NetSpec:
    """Returns the registry entry of `name`.

    Raises:
      ValueError: if no network of that name is registered; the message lists
        the valid names and the closest one.
    """
    try:
        return NETWORKS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), NETWORKS, n=1)
        hint = " (did you mean '%s'?)" % close[0] if close else ''
        raise ValueError("unknown network '%s'%s; valid names: %s"
                         % (name, hint, ', '.join(list_networks()))) from None


def get_network_fn(name: str, num_classes: int | None, weight_decay: float = 0.0,
                   is_training: bool = False) -> NetworkFn:
    """Returns `network_fn(images, **kwargs) -> (logits, end_points)`.

    Args:
      name: a registered network name (see `list_networks()`).
      num_classes: number of logits; 0 or None returns the pre-logits features.
      weight_decay: L2 weight decay passed to the net's arg_scope.
      is_training: build the training variant (dropout, batch-norm statistics).

    Returns:
      The function, with attributes `default_image_size` and `spec`. Extra
      keyword arguments (`reuse`, `scope`, `global_pool`, ...) go to the builder.

    Raises:
      ValueError: for an unknown name.
    """
    spec = get_network_spec(name)

    @functools.wraps(spec.builder)
    def network_fn(images, **kwargs):
        with slim.arg_scope(spec.arg_scope(weight_decay=weight_decay)):
            return spec.builder(images, num_classes=num_classes,
                                is_training=is_training, **kwargs)

    network_fn.default_image_size = spec.default_image_size
    network_fn.spec = spec
    return network_fn
