"""Helpers shared by the benchmark scripts: timing, thread settings, tables."""

import os
import sys
import time
from collections.abc import Callable

# Benchmarks run from a checkout: make the repository importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # noqa: E402


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Gives eager/Keras code the thread pools a Session gets from `session_config`."""
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def session_config(intra_op: int, inter_op: int) -> tf.compat.v1.ConfigProto:
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra_op,
                                    inter_op_parallelism_threads=inter_op)


def items_per_second(step: Callable[[], object], items_per_step: int, warmup: int,
                     steps: int) -> float:
    """Runs `step` `warmup` times untimed, then `steps` times timed."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return items_per_step * steps / (time.perf_counter() - start)


def print_table(header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[_format(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print('  '.join(cell.rjust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print('  '.join('-' * width for width in widths))


def _format(value: object) -> str:
    if isinstance(value, float):
        return '%.2f' % value
    return str(value)


def finish_report(report: dict, output_path: str, started: float,
                  load_at_start: tuple[float, float, float]) -> dict:
    """Adds the load average, date and duration to `report`, writes it as JSON and says where."""
    import json
    report['load_average'] = {'start': load_at_start, 'end': os.getloadavg()}
    report['date'] = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))
    report['seconds'] = time.time() - started
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    with open(output_path, 'w') as output:
        json.dump(report, output, indent=1)
    print('Load average %s at the start, %s at the end; %.0f s. Report: %s' % (
        '/'.join('%.1f' % x for x in load_at_start),
        '/'.join('%.1f' % x for x in report['load_average']['end']), report['seconds'],
        output_path))
    return report


def convert_digits(directory: str) -> str:
    """Converts the embedded digits dataset into `directory` (quietly); returns it."""
    import subprocess
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, os.path.join(repo, 'download_and_convert_data.py'),
                    '--dataset_name=digits', '--dataset_dir=' + directory], check=True,
                   capture_output=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    return directory
