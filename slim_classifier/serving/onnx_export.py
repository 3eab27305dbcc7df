"""ONNX models of frozen graphs, through tf2onnx: the optional `onnx` extra.

`pip install .[onnx]` installs tf2onnx, onnx and onnxruntime; without them an
ONNX export is a one-line error naming the extra. The model keeps the graph's
tensor names: it reads `input:0` and gives `output:0`.
"""

import logging

import tensorflow.compat.v1 as tf

from slim_classifier.errors import MissingExtraError, UserError

EXTRA = 'onnx'
INSTALL_HINT = 'pip install .[%s]' % EXTRA


class OnnxConversionError(UserError):
    """tf2onnx could not convert the graph; the message says why."""


def convert(graph_def: tf.GraphDef, input_name: str, output_name: str, opset: int) -> bytes:
    """The serialized ONNX model of a frozen graph.

    Args:
      graph_def: a frozen GraphDef (no variables).
      input_name, output_name: the tensors the model reads and gives ('input:0').
      opset: the ONNX opset to target.

    Raises:
      MissingExtraError: tf2onnx or onnx is not installed.
      OnnxConversionError: tf2onnx failed; the message has its reason.
    """
    try:
        import tf2onnx
    except ImportError as error:
        raise MissingExtraError("--export_format=onnx needs the optional '%s' extra (%s is "
                                'missing): %s' % (EXTRA, error.name or 'tf2onnx',
                                                  INSTALL_HINT)) from None
    # Its progress lines are not the user's concern; its warnings and errors still show.
    logging.getLogger('tf2onnx').setLevel(logging.WARNING)
    try:
        model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[input_name],
                                                  output_names=[output_name], opset=opset)
    # tf2onnx's failures share no base class: any of them means this graph does not convert.
    except Exception as error:  # pylint: disable=broad-except
        reason = ' '.join(str(error).split()) or type(error).__name__
        raise OnnxConversionError('tf2onnx %s could not convert the graph to ONNX opset %d: %s'
                                  % (tf2onnx.__version__, opset, reason)) from None
    return model.SerializeToString()
