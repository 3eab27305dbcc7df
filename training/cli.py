"""What the four commands share around their `main`: logging and one-line errors."""

import logging
import sys
from collections.abc import Callable

from absl import app

# Errors that describe a problem with the user's input or files. They are
# printed as one line; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def add_user_error(error_class: type[BaseException]) -> None:
    """Registers an exception class whose message is shown to users as is."""
    global USER_ERRORS
    if error_class not in USER_ERRORS:
        USER_ERRORS = USER_ERRORS + (error_class,)


def run_main(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)` with INFO logging and user errors as one line, exit 1."""
    def guarded_main(argv):
        logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s',
                            datefmt='%H:%M:%S', force=True)
        # TensorFlow's own logger would print every line a second time, and its v1 API
        # deprecation notices are not the user's business: keep its errors only.
        tf_logger = logging.getLogger('tensorflow')
        tf_logger.handlers.clear()
        tf_logger.setLevel(logging.ERROR)
        try:
            main(argv)
        except USER_ERRORS as error:
            print('error: %s' % error, file=sys.stderr)
            sys.exit(1)
    app.run(guarded_main)
