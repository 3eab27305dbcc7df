"""The one base class of the problems a user can act on.

Every command prints such an error as one line (`error: ...`) and exits 1;
anything else is a bug and keeps its traceback. No TensorFlow is imported here.
"""


class UserError(Exception):
    """A problem with the user's input, files or set-up; its message is one line."""


class TrainingError(UserError):
    """Training cannot go on: bad data, a diverging loss, a checkpoint that does not fit."""


class DiskFullError(UserError):
    """A write failed for a full device (or quota); the message names the path."""


class MissingExtraError(UserError):
    """An optional extra (`pip install .[onnx]`) that the request needs is not installed."""
