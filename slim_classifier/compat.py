"""Keeps tf_slim 1.1 working on current TensorFlow, tf-keras and NumPy.

tf-slim's last release (1.1.0, 2020) reaches into TensorFlow internals that
have since moved. Each mend below restores one name where tf_slim looks for
it, and only when that name is missing, so older TensorFlow releases (which
still have the names) are left exactly as they are. Nothing installed is
edited: the mends are applied in memory when this module is imported. One
speed-up (8) changes no answer of TensorFlow's, only how fast it is given.

Import this module before `tf_slim` anywhere in the project; `from
slim_classifier.compat import slim` gives the mended `tf_slim`.
"""

import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable

import numpy as np
from tensorflow.python.framework import ops
from tensorflow.python.ops import array_ops, control_flow_ops, variable_scope

# The mends applied in this process, in order (empty on a TensorFlow that
# needs none); the tests read it to check that each mend is in force.
APPLIED: list[str] = []


def _set_missing(module, name: str, value_factory: Callable[[], object],
                 mend: str) -> None:
    """Sets `module.name` from `value_factory()` if the module lacks it."""
    if hasattr(module, name):
        return
    setattr(module, name, value_factory())
    APPLIED.append(mend)


def _mend_keras_batch_norm() -> None:
    """1. tf.layers' batch norm lazily loads a tf_keras module that moved.

    TensorFlow's lazy loader is pointed at the module's new name, so a net
    without batch norm still never loads tf_keras (about 13 MB).
    """
    from tensorflow.python.layers import normalization as layers_normalization
    from tensorflow.python.util import lazy_loader
    old_name = 'tf_keras.legacy_tf_layers.normalization'
    if old_name in sys.modules:
        return
    # Looked up on disk: finding the old module by name would import tf_keras.
    keras = importlib.util.find_spec('tf_keras')
    if keras is None or any(os.path.isdir(os.path.join(location, 'legacy_tf_layers'))
                            for location in keras.submodule_search_locations or ()):
        return
    layers_normalization.normalization = lazy_loader.LazyLoader(
        'normalization', vars(layers_normalization), 'tf_keras.src.legacy_tf_layers.normalization')
    APPLIED.append('keras_batch_norm')


def _mend_tensor_class() -> None:
    """2. `ops.Tensor` moved to `framework/tensor.py`."""
    def tensor_class():
        from tensorflow.python.framework import tensor
        return tensor.Tensor
    _set_missing(ops, 'Tensor', tensor_class, 'ops.Tensor')


def _mend_indexed_slices() -> None:
    """3. `ops.IndexedSlices` moved to `framework/indexed_slices.py`."""
    def indexed_slices_class():
        from tensorflow.python.framework import indexed_slices
        return indexed_slices.IndexedSlices
    _set_missing(ops, 'IndexedSlices', indexed_slices_class, 'ops.IndexedSlices')


def _mend_stack() -> None:
    """4. `array_ops.stack`/`unstack` moved to `array_ops_stack`."""
    for name in ('stack', 'unstack'):
        def stack_fn(name=name):
            from tensorflow.python.ops import array_ops_stack
            return getattr(array_ops_stack, name)
        _set_missing(array_ops, name, stack_fn, 'array_ops.' + name)


def _mend_control_flow() -> None:
    """5. `cond`, `case`, `Assert`, `while_loop` left `control_flow_ops`."""
    homes = {
            'cond': ('tensorflow.python.ops.cond', 'cond'),
            'case': ('tensorflow.python.ops.control_flow_case', 'case'),
            'Assert': ('tensorflow.python.ops.control_flow_assert', 'Assert'),
            'while_loop': ('tensorflow.python.ops.while_loop', 'while_loop'),
    }
    for name, (module_name, attribute) in homes.items():
        def moved(module_name=module_name, attribute=attribute):
            return getattr(importlib.import_module(module_name), attribute)
        _set_missing(control_flow_ops, name, moved, 'control_flow_ops.' + name)


def _mend_variable_function() -> None:
    """6. `variable_scope.variable` (a VariableV1 forwarder) is gone."""
    def variable_fn():
        from tensorflow.python.ops import variable_v1
        def variable(*args, **kwargs):
            return variable_v1.VariableV1(*args, **kwargs)
        return variable
    _set_missing(variable_scope, 'variable', variable_fn, 'variable_scope.variable')


def _numpy_rejects_list_of_slices() -> bool:
    try:
        np.zeros((2, 2))[[slice(0, 1), slice(0, 1)]]
    except IndexError:
        return True
    return False


def _mend_partitioned_checkpoint_assign(slim_variables) -> None:
    """7. NumPy >= 1.23 rejects `array[list_of_slices]` in assign_from_checkpoint.

    tf_slim feeds each partition of a partitioned variable with
    `ckpt_value[slice_dims]`, a list of slices. The replacement below is the
    same algorithm with the slices passed as a tuple.
    """
    if not _numpy_rejects_list_of_slices():
        return
    import tensorflow.compat.v1 as tf

    def assign_from_checkpoint(model_path, var_list, ignore_missing_vars=False):
        """Drop-in for `tf_slim.assign_from_checkpoint` (see tf_slim's docs)."""
        if isinstance(var_list, (tuple, list)):
            grouped = {}
            for var in var_list:
                grouped.setdefault(slim_variables.get_variable_full_name(var), []).append(var)
        else:
            grouped = {name: list(value) if isinstance(value, (tuple, list)) else [value]
                       for name, value in var_list.items()}
        reader = tf.train.NewCheckpointReader(model_path)
        feed_dict = {}
        assign_ops = []
        for checkpoint_name, variables in grouped.items():
            if not reader.has_tensor(checkpoint_name):
                message = 'Checkpoint is missing variable [%s]' % checkpoint_name
                if not ignore_missing_vars:
                    raise ValueError(message)
                tf.logging.warning(message)
                continue
            value = reader.get_tensor(checkpoint_name)
            for var in variables:
                placeholder = tf.placeholder(var.dtype.base_dtype, var.get_shape(),
                                             name='placeholder/' + var.op.name)
                assign_ops.append(var.assign(placeholder))
                slice_info = var._save_slice_info  # pylint: disable=protected-access
                if not slice_info:
                    if var.get_shape() != value.shape:
                        raise ValueError(
                            'Total size of new array must be unchanged for %s '
                            'lh_shape: [%s], rh_shape: [%s]'
                            % (checkpoint_name, value.shape, var.get_shape()))
                    feed_dict[placeholder] = value
                else:
                    index = tuple(slice(start, start + size) for start, size
                                  in zip(slice_info.var_offset, slice_info.var_shape))
                    feed_dict[placeholder] = value[index].reshape(slice_info.var_shape)
        return tf.group(*assign_ops), feed_dict

    slim_variables.assign_from_checkpoint = assign_from_checkpoint
    APPLIED.append('assign_from_checkpoint')


def _speed_up_graph_mode_variable_comparison() -> None:
    """8. Not a mend but a speed-up: variables compare in graph mode without asking the context.

    TensorFlow 2 makes `Variable.__eq__`/`__hash__` ask
    `ops.executing_eagerly_outside_functions()`, which walks the context stack
    (about 0.1 ms), and tf-keras' legacy layers behind every `slim.batch_norm`
    hash or compare every variable of the graph for each weight they add, so
    building a net grew with the square of its variables (resnet_v1_200: half
    of its graph construction). The answer is known without the walk where no
    function is being built: eager execution is on, or the default graph is an
    ordinary graph (it is then the outer context itself). Elsewhere the
    original decides, so the result is always the original's.
    """
    from tensorflow.python.eager import context
    original = ops.executing_eagerly_outside_functions
    if getattr(original, 'mended', False):
        return

    def executing_eagerly_outside_functions() -> bool:
        if context.executing_eagerly():
            return True
        if not ops.get_default_graph().building_function:
            return False
        return original()

    executing_eagerly_outside_functions.mended = True
    executing_eagerly_outside_functions.original = original
    executing_eagerly_outside_functions.__doc__ = original.__doc__
    ops.executing_eagerly_outside_functions = executing_eagerly_outside_functions
    APPLIED.append('executing_eagerly_outside_functions')


# tf_slim's layers call the legacy Keras `layer.apply` and `tf.layers.flatten`, which warn
# on every call; the calls are tf_slim's own, which no code of ours can change.
for _message in (r'`layer\.apply` is deprecated', r'`tf\.layers\.flatten` is deprecated'):
    warnings.filterwarnings('ignore', message=_message, category=UserWarning)

_mend_keras_batch_norm()
_mend_tensor_class()
_mend_indexed_slices()
_mend_stack()
_mend_control_flow()
_mend_variable_function()
_speed_up_graph_mode_variable_comparison()

import tf_slim as slim  # noqa: E402  (must follow the mends above)
from tf_slim.ops import variables as _slim_variables  # noqa: E402
from tf_slim.ops.arg_scope import arg_scope_func_key  # noqa: E402,F401  (for nets/conv_head.py)

_mend_partitioned_checkpoint_assign(_slim_variables)
if 'assign_from_checkpoint' in APPLIED:
    slim.assign_from_checkpoint = _slim_variables.assign_from_checkpoint


def _dropout_stateless_in_deterministic_training(slim_module) -> None:
    """Routes `slim.dropout` through slim_classifier.runtime.determinism.

    Not a mend: inside `determinism.stateless_draws` (deterministic training),
    dropout draws its mask from a stateless op seeded by the global step, so a
    resumed run drops what the uninterrupted run dropped; elsewhere it is
    tf_slim's own dropout, called with the same arguments. The replacement
    shares tf_slim's arg_scope key, so `arg_scope([slim.dropout], ...)`
    reaches it whichever of the two a net names.
    """
    import tensorflow.compat.v1 as tf
    from tf_slim.layers import utils as layer_utils
    from tf_slim.ops.arg_scope import add_arg_scope

    from slim_classifier.runtime import determinism
    original = slim_module.dropout

    def dropout(inputs, keep_prob=0.5, noise_shape=None, is_training=True,
                outputs_collections=None, scope=None, seed=None):
        """tf_slim's dropout; stateless inside `determinism.stateless_draws`."""
        if determinism.active() is None:
            return original(inputs, keep_prob=keep_prob, noise_shape=noise_shape,
                            is_training=is_training, outputs_collections=outputs_collections,
                            scope=scope, seed=seed)
        with tf.variable_scope(scope, 'Dropout', [inputs]) as sc:
            inputs = tf.convert_to_tensor(inputs)
            outputs = layer_utils.smart_cond(
                is_training, lambda: determinism.dropout(inputs, keep_prob, noise_shape),
                lambda: tf.identity(inputs))
            return layer_utils.collect_named_outputs(outputs_collections, sc.name, outputs)

    dropout._key_op = arg_scope_func_key(original)  # pylint: disable=protected-access
    slim_module.dropout = add_arg_scope(dropout)


_dropout_stateless_in_deterministic_training(slim)
