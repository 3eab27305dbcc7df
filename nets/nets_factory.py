"""The one registry of networks: name -> builder, arg_scope, image size, preprocessing.

Every other part of the project (training, evaluation, export, preprocessing
choice, benchmarks, tests) reads the networks from `NETWORKS`; adding a net
is one `_register` call. Builders are named by their module path and loaded
when first used, so listing the nets (`--help`, `list_models`) imports no
TensorFlow. `networks_map` and `arg_scopes_map` are read-only views with the
original TF-Slim names.
"""

import dataclasses
import difflib
import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# (logits, end_points) = network_fn(images)
NetworkFn = Callable[..., tuple[Any, dict[str, Any]]]


def _load(path: str) -> Callable:
    """'nets.vgg:vgg_16' -> the function vgg_16 of nets/vgg.py."""
    module_name, _, attribute = path.partition(':')
    value = importlib.import_module(module_name)
    for part in attribute.split('.'):
        value = getattr(value, part)
    return value


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """How to build one network and what it expects as input."""
    name: str
    builder_path: str  # 'module:function'
    arg_scope_path: str
    default_image_size: int
    preprocessing_name: str
    num_channels: int = 3
    # The class count of the public checkpoints, used when none is given.
    default_num_classes: int = 1000
    # Arguments the name binds (e.g. depth_multiplier of mobilenet_v1_050).
    bound_arguments: tuple[tuple[str, Any], ...] = ()

    @property
    def builder(self) -> Callable[..., tuple[Any, dict[str, Any]]]:
        builder = _load(self.builder_path)
        if not self.bound_arguments:
            return builder
        bound = functools.partial(builder, **dict(self.bound_arguments))
        return functools.update_wrapper(bound, builder)

    @property
    def arg_scope(self) -> Callable[..., dict]:
        return _load(self.arg_scope_path)


NETWORKS: dict[str, NetSpec] = {}


def _register(name: str, builder_path: str, arg_scope_path: str, default_image_size: int,
              preprocessing_name: str, **kwargs) -> None:
    if name in NETWORKS:
        raise ValueError('network %r is registered twice' % name)
    NETWORKS[name] = NetSpec(name, builder_path, arg_scope_path, default_image_size,
                             preprocessing_name, **kwargs)


_register('lenet', 'nets.lenet:lenet', 'nets.lenet:lenet_arg_scope', 28, 'lenet',
          num_channels=1, default_num_classes=10)
_register('cifarnet', 'nets.cifarnet:cifarnet', 'nets.cifarnet:cifarnet_arg_scope', 32,
          'cifarnet', default_num_classes=10)
_register('alexnet_v2', 'nets.alexnet:alexnet_v2', 'nets.alexnet:alexnet_v2_arg_scope', 224,
          'vgg')
for _name in ('vgg_a', 'vgg_16', 'vgg_19'):
    _register(_name, 'nets.vgg:' + _name, 'nets.vgg:vgg_arg_scope', 224, 'vgg')
for _name, _size, _classes in (('inception_v1', 224, 1000), ('inception_v2', 224, 1000),
                               ('inception_v3', 299, 1000), ('inception_v4', 299, 1001)):
    _register(_name, 'nets.%s:%s' % (_name, _name), 'nets.inception_utils:inception_arg_scope',
              _size, 'inception', default_num_classes=_classes)

# The published model zoo. ResNet v1 and VGG checkpoints (converted from Caffe) have
# 1000 classes, the others 1001 (a background class at 0). ResNet v2 checkpoints were
# trained with inception preprocessing (at 299), although the original factory mapped
# them to vgg; the preprocessing here is the one the published checkpoints need.
for _depth in (50, 101, 152, 200):
    _register('resnet_v1_%d' % _depth, 'nets.resnet_v1:resnet_v1_%d' % _depth,
              'nets.resnet_utils:resnet_arg_scope', 224, 'vgg')
    _register('resnet_v2_%d' % _depth, 'nets.resnet_v2:resnet_v2_%d' % _depth,
              'nets.resnet_utils:resnet_arg_scope', 224, 'inception', default_num_classes=1001)
_register('inception_resnet_v2', 'nets.inception_resnet_v2:inception_resnet_v2',
          'nets.inception_resnet_v2:inception_resnet_v2_arg_scope', 299, 'inception',
          default_num_classes=1001)
for _suffix in ('', '_075', '_050', '_025'):
    _register('mobilenet_v1' + _suffix, 'nets.mobilenet_v1:mobilenet_v1' + _suffix,
              'nets.mobilenet_v1:mobilenet_v1_arg_scope', 224, 'inception',
              default_num_classes=1001)
for _name, _builder in (('mobilenet_v2', 'mobilenet'), ('mobilenet_v2_140', 'mobilenet_v2_140'),
                        ('mobilenet_v2_050', 'mobilenet_v2_050'),
                        ('mobilenet_v2_035', 'mobilenet_v2_035')):
    _register(_name, 'nets.mobilenet.mobilenet_v2:' + _builder,
              'nets.mobilenet.mobilenet_v2:training_scope', 224, 'inception',
              default_num_classes=1001)
for _name, _builder in (('mobilenet_v3_large', 'large'), ('mobilenet_v3_small', 'small'),
                        ('mobilenet_v3_large_minimalistic', 'large_minimalistic'),
                        ('mobilenet_v3_small_minimalistic', 'small_minimalistic'),
                        ('mobilenet_edgetpu', 'edge_tpu'),
                        ('mobilenet_edgetpu_075', 'edge_tpu_075')):
    _register(_name, 'nets.mobilenet.mobilenet_v3:' + _builder,
              'nets.mobilenet.mobilenet:training_scope', 224, 'inception',
              default_num_classes=1001)
for _family in ('nasnet', 'pnasnet'):
    for _size, _image_size in (('mobile', 224), ('large', 331)):
        _name = '%s_%s' % (_family, _size)
        _register(_name, 'nets.nasnet.%s:build_%s' % (_family, _name),
                  'nets.nasnet.%s:%s_arg_scope' % (_family, _name), _image_size, 'inception',
                  default_num_classes=1001)


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
    from slim_classifier.compat import slim
    spec = get_network_spec(name)
    builder, arg_scope = spec.builder, spec.arg_scope

    @functools.wraps(builder)
    def network_fn(images, **kwargs):
        with slim.arg_scope(arg_scope(weight_decay=weight_decay)):
            return builder(images, num_classes=num_classes, is_training=is_training, **kwargs)

    network_fn.default_image_size = spec.default_image_size
    network_fn.spec = spec
    return network_fn


class _LazyView(Mapping):
    """A read-only {name: function} view of the registry, loading each function on access."""

    def __init__(self, attribute: str):
        self._attribute = attribute

    def __getitem__(self, name: str) -> Callable:
        if name not in NETWORKS:
            raise KeyError(name)
        return getattr(NETWORKS[name], self._attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(NETWORKS)

    def __len__(self) -> int:
        return len(NETWORKS)


networks_map: Mapping[str, Callable] = _LazyView('builder')
arg_scopes_map: Mapping[str, Callable] = _LazyView('arg_scope')
