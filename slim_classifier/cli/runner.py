"""What every command shares around its `main`: grouped help, quiet logging, one-line errors.

`run_command` answers `--help` from the command's config classes before
anything heavy is imported, keeps TensorFlow's C++ and Python chatter out of
the output unless `-v`/`--verbosity` asks for it, and prints the problems a
user can act on as one line (exit 1), a full device among them, wherever it
was met.
"""

import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable

from absl import app

from slim_classifier.cli.flags import format_help
from slim_classifier.errors import UserError
from slim_classifier.runtime import files

# Problems with the user's input or files: printed as one line; anything else
# is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError,
                                                FileExistsError, NotADirectoryError,
                                                IsADirectoryError, PermissionError)
HELP_ARGUMENTS = ('-h', '--help', '-help', '--helpshort', '-?')
# TensorFlow's thread that writes event files; what fails it is raised again by
# the writer's next call in the command's own thread.
_EVENT_WRITER_THREAD = 'EventLoggerThread'


def requested_verbosity(argv: list[str]) -> int:
    """The value of -v/--verbosity among `argv` (absl's flag), 0 when not given."""
    for index, argument in enumerate(argv):
        for name in ('-v', '--verbosity', '-verbosity'):
            if argument == name and index + 1 < len(argv):
                value = argv[index + 1]
            elif argument.startswith(name + '='):
                value = argument[len(name) + 1:]
            else:
                continue
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def quiet_tensorflow(verbose: bool) -> None:
    """Keeps TensorFlow's banners, C++ log lines and deprecation notices out of the output.

    Call before TensorFlow is imported: its C++ side reads the environment once.
    """
    if verbose:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '0')
        return
    # 3 hides the C++ errors too, which on a machine without a GPU are the CUDA
    # probes ("failed call to cuInit"); real errors reach the user as exceptions.
    for name, value in (('TF_CPP_MIN_LOG_LEVEL', '3'), ('GRPC_VERBOSITY', 'ERROR')):
        if not os.environ.get(name):
            os.environ[name] = value
    # tf_slim and TensorFlow's v1 layers warn about their own deprecations on import.
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    warnings.filterwarnings('ignore', category=UserWarning, module='tf_slim')
    warnings.filterwarnings('ignore', category=UserWarning, module='keras')
    # TensorFlow 2.16-2.21 all ship tf.lite.Interpreter, which announces its successor.
    warnings.filterwarnings('ignore', message=r'\s*Warning: tf.lite.Interpreter is deprecated',
                            category=UserWarning)
    # A seeded graph's tf.data functions take their op seeds from it, as intended.
    warnings.filterwarnings('ignore', message=r'Seed \d+ from outer graph might be getting used',
                            category=UserWarning)


# Loaded eagerly by `import tensorflow` only to register Keras optimizers for
# Keras SavedModels; TensorFlow ignores their ImportError. The commands build
# graphs with tf_slim and never use them, and Keras (with scikit-learn, where
# it is installed) costs 1.5-2.5 s of every command's start.
_EAGER_KERAS = ('keras.src.optimizers', 'tf_keras.src.optimizers')


def import_tensorflow_silently() -> None:
    """Imports TensorFlow with the process's stderr closed, without Keras.

    Its C++ libraries print their banners (oneDNN, CUDA probes) through absl
    before any log level applies, so only closing stderr keeps them out. A
    None in sys.modules makes the eager Keras import fail at once, before its
    parent packages load; `tf.keras` still loads on first use.
    """
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    skipped = [name for name in _EAGER_KERAS if name not in sys.modules]
    sys.modules.update(dict.fromkeys(skipped))
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    finally:
        for name in skipped:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def user_message(error: BaseException) -> str | None:
    """The one line printed for an error the user can act on, or None for a bug."""
    if isinstance(error, USER_ERRORS):
        return str(error) or type(error).__name__
    if isinstance(error, Exception) and files.is_disk_full(error):
        lines = str(error).strip().splitlines()
        return 'no space left on the device (%s); free space there or write elsewhere' % (
            lines[0] if lines else type(error).__name__)
    return None


def _quiet_event_writer_failures(previous: Callable) -> Callable:
    """A threading.excepthook that leaves a full device in the event writer to its caller.

    Without it, the writer's thread prints a traceback before the command's
    own one-line error.
    """
    def hook(args):
        if (args.thread is not None and args.thread.name == _EVENT_WRITER_THREAD
                and isinstance(args.exc_value, Exception) and files.is_disk_full(args.exc_value)):
            return
        previous(args)
    return hook


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s',
                        datefmt='%H:%M:%S', force=True)
    # TensorFlow's own logger would print every line a second time, and its v1 API
    # deprecation notices are not the user's business: keep its errors only.
    tf_logger = logging.getLogger('tensorflow')
    tf_logger.handlers.clear()
    tf_logger.setLevel(logging.INFO if verbose else logging.ERROR)
    # The TFLite converter announces itself through absl's logger.
    logging.getLogger('absl').setLevel(logging.INFO if verbose else logging.WARNING)


def run_command(main: Callable[[list[str]], object], summary: str, config_classes: tuple = (),
                choices: Callable[[], dict[str, list[str]]] | None = None) -> None:
    """Runs `main` as a command: help, logging, and user errors as one line.

    Args:
      main: called with the arguments left after the flags; a returned int is
        the exit code.
      summary: what the command does, printed first by `--help`.
      config_classes: the configs whose options are the command's flags.
      choices: returns allowed values known only at run time, by flag name,
        for `--help` (e.g. the registered nets).
    """
    arguments = sys.argv[1:]
    verbose = requested_verbosity(arguments) > 0
    quiet_tensorflow(verbose)
    if any(argument in HELP_ARGUMENTS for argument in arguments):
        print(format_help(summary, *config_classes, extra_choices=choices() if choices else None))
        sys.exit(0)

    def guarded_main(argv):
        _configure_logging(verbose)
        if not verbose:
            import_tensorflow_silently()
        threading.excepthook = _quiet_event_writer_failures(threading.excepthook)
        try:
            code = main(argv)
        except Exception as error:  # pylint: disable=broad-except
            message = user_message(error)
            if message is None:
                raise
            print('error: %s' % message, file=sys.stderr)
            sys.exit(1)
        sys.exit(code or 0)
    app.run(guarded_main)
