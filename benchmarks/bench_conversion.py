"""Image-folder conversion: images/sec with 1 and N workers, and peak memory as the folder grows.

Generates folders of photo-like images (random crops, resizes and flips of
scikit-learn's sample photos, 300 to 500 pixels on the longer side, mostly
JPEG with one PNG in fifty, in four classes), then converts each folder with
`download_and_convert_data.py` run as its own process, once with one worker
and once with `--workers`, and prints one table with:

* the wall time of the whole command (interpreter and TensorFlow start-up
  included), and images/sec over the conversion loop itself: from the
  converter's first progress line to its last, timed here as they arrive;
* the CPU time of the whole command, and per image the CPU time of the
  converting process and of its workers during the loop, read from /proc as
  the progress lines arrive. CPU time holds steadier than images/sec on a
  machine shared with other work, and it bounds the speed-up that idle
  cores would give: the loop can go no faster than its busiest process;
* peak memory: the high-water mark of the resident set (VmHWM) of the
  converting process and of its largest worker, exact per process; and the
  largest total over the process tree, polled every `--poll` seconds, of
  the process's resident set and its workers' private pages (a forked
  worker's resident set also counts the pages it shares with its parent).

It then prints the speed-up of N workers over one, per folder, and the ratio
of the large folder's memory peaks to the small folder's, per worker count:
the conversion streams images, so the peaks should stay flat as the folder
grows.

The folders are written once under `--image_root` and reused by later runs;
the large folder is written in parallel and the small one hard-links its
first images. Linux only: memory is read from /proc.

    python benchmarks/bench_conversion.py                # 1,000 and 10,000 images
    python benchmarks/bench_conversion.py --quick        # 200 and 1,000 images
    python benchmarks/bench_conversion.py --workers 4 --json /tmp/conversion.json
"""

import argparse
import dataclasses
import functools
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

import common  # before the project's imports: it puts the repository on sys.path

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCHMARKS)
CONVERTER = os.path.join(REPO, 'download_and_convert_data.py')
DEFAULT_IMAGE_ROOT = os.path.join(tempfile.gettempdir(), 'slim_bench_conversion')
DATASET_NAME = 'bench'

NUM_CLASSES = 4
# One file in this many is a PNG, as in a folder of camera photos with a few
# screenshots; PNGs cost the converter a decode and a re-encode.
PNG_EVERY = 50
LONGER_SIDE_RANGE = (300, 500)
JPEG_QUALITY_RANGE = (75, 95)
# Part of the cache key of a generated folder: change it when the images change.
GENERATOR_VERSION = 1

_KIB_PER_MIB = 1024.0


class BenchmarkError(Exception):
    """A conversion failed or converted less than its folder; the message says which."""


@dataclasses.dataclass
class ConversionRun:
    """The figures of one conversion command.

    Attributes:
        images: image files in the folder (all of them are converted).
        workers: the command's --num_workers.
        wall_seconds: the whole command, start-up included.
        loop_seconds: from the first progress line to the last.
        cpu_seconds: user plus system time of the command and its workers.
        parent_loop_cpu_seconds: CPU time of the converting process during
            the loop.
        workers_loop_cpu_seconds: CPU time of its workers during the loop.
        parent_peak_mb: VmHWM of the converting process.
        worker_peak_mb: the largest VmHWM among its workers; 0 without workers.
        tree_peak_mb: the largest polled total of the process's VmRSS and its
            workers' private pages.
        load_average: the 1-minute load average before and after the command.
    """
    images: int
    workers: int
    wall_seconds: float
    loop_seconds: float
    cpu_seconds: float
    parent_loop_cpu_seconds: float
    workers_loop_cpu_seconds: float
    parent_peak_mb: float
    worker_peak_mb: float
    tree_peak_mb: float
    load_average: tuple[float, float]

    @property
    def images_per_sec(self) -> float:
        return self.images / self.loop_seconds

    @property
    def parent_cpu_ms_per_image(self) -> float:
        return 1000 * self.parent_loop_cpu_seconds / self.images

    @property
    def workers_cpu_ms_per_image(self) -> float:
        return 1000 * self.workers_loop_cpu_seconds / self.images


# Generated image folders.

def prepare_folders(image_root: str, sizes: list[int], seed: int) -> dict[int, str]:
    """Returns a folder of photos for each size, writing only the missing ones.

    Image `i` depends only on `seed` and `i`, so a smaller folder is the
    first images of the largest one and hard-links them.

    Args:
        image_root: where the folders live between runs.
        sizes: the number of images of each folder.
        seed: fixes the images.

    Returns:
        The folder of each size.
    """
    os.makedirs(image_root, exist_ok=True)
    folders = {}
    largest = None
    for size in sorted(sizes, reverse=True):
        folder = os.path.join(image_root, 'photos_%d' % size)
        if not _is_complete(folder, size, seed):
            start = time.perf_counter()
            _start_folder(folder)
            if largest is None:
                _write_photos(folder, size, seed)
            else:
                _link_photos(largest, folder, size)
            _mark_complete(folder, size, seed)
            print('wrote %d images to %s (%.1f s)' % (size, folder,
                                                     time.perf_counter() - start), flush=True)
        folders[size] = folder
        if largest is None:
            largest = folder
    return folders


def _marker_path(folder: str) -> str:
    # Beside the folder, not inside it, where the converter would list it.
    return folder + '.json'


def _marker(size: int, seed: int) -> dict:
    return {'images': size, 'seed': seed, 'generator_version': GENERATOR_VERSION}


def _is_complete(folder: str, size: int, seed: int) -> bool:
    try:
        with open(_marker_path(folder)) as marker_file:
            return json.load(marker_file) == _marker(size, seed)
    except (OSError, ValueError):
        return False


def _mark_complete(folder: str, size: int, seed: int) -> None:
    with open(_marker_path(folder), 'w') as marker_file:
        json.dump(_marker(size, seed), marker_file)


def _start_folder(folder: str) -> None:
    """Empties `folder` and gives it one sub-folder per class."""
    if os.path.exists(_marker_path(folder)):
        os.remove(_marker_path(folder))
    shutil.rmtree(folder, ignore_errors=True)
    for label in range(NUM_CLASSES):
        os.makedirs(os.path.join(folder, _class_name(label)))


def _class_name(label: int) -> str:
    return 'class_%d' % label


def _photo_path(folder: str, index: int) -> str:
    extension = '.png' if index % PNG_EVERY == PNG_EVERY - 1 else '.jpg'
    return os.path.join(folder, _class_name(index % NUM_CLASSES), '%05d%s' % (index, extension))


def _write_photos(folder: str, size: int, seed: int) -> None:
    # Forked writers start at once and need nothing but Pillow and NumPy.
    with multiprocessing.get_context('fork').Pool() as pool:
        for _ in pool.imap_unordered(functools.partial(_write_photo, folder, seed),
                                     range(size), chunksize=64):
            pass


def _link_photos(source: str, folder: str, size: int) -> None:
    for index in range(size):
        os.link(_photo_path(source, index), _photo_path(folder, index))


def _write_photo(folder: str, seed: int, index: int) -> None:
    """Writes image `index`: a random crop of a sample photo, resized and maybe flipped."""
    rng = np.random.default_rng([seed, index])
    photos = _sample_photos()
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    crop_height = int(rng.integers(height // 2, height + 1))
    crop_width = int(rng.integers(width // 2, width + 1))
    top = int(rng.integers(height - crop_height + 1))
    left = int(rng.integers(width - crop_width + 1))
    view = photo[top:top + crop_height, left:left + crop_width]
    if rng.random() < 0.5:
        view = view[:, ::-1]
    scale = rng.integers(LONGER_SIDE_RANGE[0], LONGER_SIDE_RANGE[1] + 1) / max(view.shape[:2])
    size = (round(crop_width * scale), round(crop_height * scale))
    image = Image.fromarray(np.ascontiguousarray(view)).resize(size, Image.Resampling.BILINEAR)
    path = _photo_path(folder, index)
    if path.endswith('.png'):
        image.save(path, 'PNG')
    else:
        quality = int(rng.integers(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1))
        image.save(path, 'JPEG', quality=quality)


@functools.cache
def _sample_photos() -> tuple[np.ndarray, ...]:
    # Loaded once per writer process.
    return tuple(load_sample_images().images)


# Memory and CPU time of a process tree.

def _descendants(root: int) -> list[int]:
    """The processes below `root`, found through the parent id of every process."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry))[1])
        except (OSError, IndexError, ValueError):  # gone between listing and reading
            continue
        children.setdefault(parent, []).append(int(entry))
    found, frontier = [], [root]
    while frontier:
        below = children.get(frontier.pop(), [])
        found.extend(below)
        frontier.extend(below)
    return found


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name, from the state on."""
    with open('/proc/%d/stat' % pid) as stat_file:
        return stat_file.read().rsplit(')', 1)[1].split()


def tree_cpu_seconds(root: int) -> tuple[float, float]:
    """User plus system CPU time of `root` itself, and of the processes below it.

    Processes below it count whether they still run or have exited and been
    waited for: then `root`'s children times hold theirs.

    Args:
        root: a running process, or one exited but not yet waited for.

    Returns:
        (seconds of `root`, seconds of every process below it).
    """
    while True:
        _, waited = _cpu_seconds(root)
        below = 0.0
        for pid in _descendants(root):
            try:
                below += sum(_cpu_seconds(pid))
            except OSError:  # waited for since it was found
                continue
        own, waited_after = _cpu_seconds(root)
        # A child waited for during the readings could be counted twice or
        # not at all; read again until none was.
        if waited_after == waited:
            return own, waited + below


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, waited-for children's) user plus system CPU seconds of a process."""
    fields = _stat_fields(pid)
    # utime, stime, cutime and cstime: fields 14 to 17 of proc(5), here
    # counted from the state, field 3.
    ticks = [int(field) for field in fields[11:15]]
    clock = os.sysconf('SC_CLK_TCK')
    return (ticks[0] + ticks[1]) / clock, (ticks[2] + ticks[3]) / clock


def _read_kib(path: str, fields: tuple[str, ...]) -> dict[str, int]:
    """Reads `name: value kB` fields of a /proc file."""
    values = {}
    with open(path) as proc_file:
        for line in proc_file:
            name = line.split(':', 1)[0]
            if name in fields:
                values[name] = int(line.split()[1])
    return values


class TreeMemoryWatch(threading.Thread):
    """Follows the memory of a process and of its workers until stopped.

    Per process it keeps the largest VmHWM read. Over the tree it keeps the
    largest total of one poll: the process's VmRSS plus each worker's
    private pages. A forked worker's resident set also holds the pages it
    still shares with its parent, which VmRSS summed over the tree would
    count twice; and Pss would split the shared library pages with every
    other process on the machine that maps them.
    """

    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_hwm_kib: dict[int, int] = {}
        self.tree_peak_kib = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self._poll()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _poll(self) -> None:
        total = 0
        for pid in [self.root] + _descendants(self.root):
            try:
                status = _read_kib('/proc/%d/status' % pid, ('VmHWM', 'VmRSS'))
                if pid == self.root:
                    total += status.get('VmRSS', 0)
                else:
                    private = _read_kib('/proc/%d/smaps_rollup' % pid,
                                        ('Private_Clean', 'Private_Dirty'))
                    total += sum(private.values())
            except OSError:  # exited since it was found
                continue
            # A zombie has no memory fields left.
            self.peak_hwm_kib[pid] = max(self.peak_hwm_kib.get(pid, 0), status.get('VmHWM', 0))
        self.tree_peak_kib = max(self.tree_peak_kib, total)


# Conversions.

def convert(image_dir: str, num_images: int, workers: int, poll_interval: float
            ) -> ConversionRun:
    """Converts `image_dir` in a child process and measures it.

    Args:
        image_dir: the folder of `num_images` images.
        num_images: how many images it holds.
        workers: the converter's --num_workers.
        poll_interval: seconds between two memory polls.

    Returns:
        The run's figures.

    Raises:
        BenchmarkError: if the command fails or converts fewer images.
    """
    with tempfile.TemporaryDirectory(prefix='bench_conversion_') as dataset_dir:
        command = [sys.executable, CONVERTER, '--dataset_name=' + DATASET_NAME,
                   '--image_dir=' + image_dir, '--dataset_dir=' + dataset_dir,
                   '--num_workers=%d' % workers]
        load_before = os.getloadavg()[0]
        cpu_before = _children_cpu_seconds()
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=_child_env(), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        memory = TreeMemoryWatch(process.pid, poll_interval)
        memory.start()
        lines, progress = [], []
        for line in process.stdout:
            lines.append(line)
            if line.startswith('converting %s:' % DATASET_NAME):
                progress.append((time.perf_counter(), tree_cpu_seconds(process.pid)))
        process.wait()
        wall_seconds = time.perf_counter() - start
        memory.stop()
        if process.returncode != 0:
            raise BenchmarkError('converting %s with %d workers exited with %d:\n%s'
                                 % (image_dir, workers, process.returncode,
                                    ''.join(lines[-20:])))
        _check_converted(dataset_dir, num_images)
    (first_time, first_cpu), (last_time, last_cpu) = progress[0], progress[-1]
    worker_hwm = [kib for pid, kib in memory.peak_hwm_kib.items() if pid != process.pid]
    return ConversionRun(
        images=num_images, workers=workers, wall_seconds=wall_seconds,
        loop_seconds=last_time - first_time,
        cpu_seconds=_children_cpu_seconds() - cpu_before,
        parent_loop_cpu_seconds=last_cpu[0] - first_cpu[0],
        workers_loop_cpu_seconds=last_cpu[1] - first_cpu[1],
        parent_peak_mb=memory.peak_hwm_kib.get(process.pid, 0) / _KIB_PER_MIB,
        worker_peak_mb=max(worker_hwm, default=0) / _KIB_PER_MIB,
        tree_peak_mb=memory.tree_peak_kib / _KIB_PER_MIB,
        load_average=(load_before, os.getloadavg()[0]))


def _child_env() -> dict[str, str]:
    return {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'PYTHONUNBUFFERED': '1'}


def _children_cpu_seconds() -> float:
    # Waited-for children, with the workers they in turn waited for.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _check_converted(dataset_dir: str, num_images: int) -> None:
    with open(os.path.join(dataset_dir, 'dataset_info.json')) as info_file:
        converted = sum(json.load(info_file)['splits'].values())
    if converted != num_images:
        raise BenchmarkError('the converter wrote %d of the %d images' % (converted, num_images))


# Report.

def print_report(runs: list[ConversionRun], sizes: list[int], workers: int) -> dict:
    """Prints the table and the ratios; returns the ratios by folder size or worker count."""
    common.print_table(
        ['images', 'workers', 'wall s', 'loop s', 'images/sec', 'CPU s', 'parent ms/img',
         'workers ms/img', 'parent MB', 'worker MB', 'tree MB', 'load'],
        [[run.images, run.workers, run.wall_seconds, run.loop_seconds, run.images_per_sec,
          run.cpu_seconds, run.parent_cpu_ms_per_image, run.workers_cpu_ms_per_image,
          run.parent_peak_mb, run.worker_peak_mb, run.tree_peak_mb,
          '%.1f-%.1f' % run.load_average] for run in runs])
    by_key = {(run.images, run.workers): run for run in runs}
    ratios = {'speedup': {}, 'cpu_bound_speedup': {}, 'memory_growth': {}}
    for size in sizes:
        one, many = by_key[size, 1], by_key[size, workers]
        speedup = many.images_per_sec / one.images_per_sec
        # With a core for each process, the loop goes as fast as its busiest
        # process allows: the parent, or the workers sharing their work.
        bound = one.parent_cpu_ms_per_image / max(many.parent_cpu_ms_per_image,
                                                  many.workers_cpu_ms_per_image / workers)
        ratios['speedup'][size] = speedup
        ratios['cpu_bound_speedup'][size] = bound
        print('%d images: %d workers convert %.2fx as fast as 1 (%.0f%% of linear); '
              'their CPU times allow %.2fx with a free core per process'
              % (size, workers, speedup, 100 * speedup / workers, bound))
    small, large = sizes
    for count in (1, workers):
        before, after = by_key[small, count], by_key[large, count]
        growth = {'parent': after.parent_peak_mb / before.parent_peak_mb,
                  'tree': after.tree_peak_mb / before.tree_peak_mb}
        ratios['memory_growth'][count] = growth
        print('%s, peak memory at %d images / at %d: converting process '
              '%.0f / %.0f MB = %.2fx, tree %.0f / %.0f MB = %.2fx'
              % (_workers(count), large, small, after.parent_peak_mb, before.parent_peak_mb,
                 growth['parent'], after.tree_peak_mb, before.tree_peak_mb, growth['tree']))
    return ratios


def _workers(count: int) -> str:
    return '1 worker' if count == 1 else '%d workers' % count


def write_json(path: str, args: argparse.Namespace, runs: list[ConversionRun],
               ratios: dict) -> None:
    """Writes the options, every run and the ratios to `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figures = {
        'cpus': len(os.sched_getaffinity(0)),
        'options': {'sizes': args.sizes, 'workers': args.workers, 'rounds': args.rounds,
                    'poll_seconds': args.poll, 'seed': args.seed},
        'runs': [{**dataclasses.asdict(run), 'images_per_sec': run.images_per_sec}
                 for run in runs],
        **ratios,
    }
    with open(path, 'w') as json_file:
        json.dump(figures, json_file, indent=2)


def best_of(rounds: list[ConversionRun]) -> ConversionRun:
    """The fastest round, with the largest memory peaks of all rounds."""
    fastest = min(rounds, key=lambda run: run.loop_seconds)
    return dataclasses.replace(
        fastest,
        parent_peak_mb=max(run.parent_peak_mb for run in rounds),
        worker_peak_mb=max(run.worker_peak_mb for run in rounds),
        tree_peak_mb=max(run.tree_peak_mb for run in rounds))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs=2, default=[1000, 10000],
                        metavar=('SMALL', 'LARGE'), help='images in the two folders')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: folders of 200 and 1,000 images')
    parser.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)),
                        help='the worker count compared with one (default: usable CPUs)')
    parser.add_argument('--rounds', type=int, default=2,
                        help='conversions of each folder with each worker count; the '
                             'fastest is reported, with the largest memory peaks')
    parser.add_argument('--poll', type=float, default=0.1,
                        help='seconds between two memory polls of the process tree')
    parser.add_argument('--image_root', default=DEFAULT_IMAGE_ROOT,
                        help='where the generated folders are kept for later runs')
    parser.add_argument('--seed', type=int, default=0, help='fixes the generated images')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    args = parser.parse_args()
    if args.quick:
        args.sizes = [200, 1000]
    if not 0 < args.sizes[0] < args.sizes[1]:
        parser.error('--sizes must be two image counts, the smaller first; got %d %d'
                     % tuple(args.sizes))
    if args.workers < 2:
        parser.error('--workers must be >= 2 to compare with one worker; got %d'
                     % args.workers)
    if args.rounds < 1:
        parser.error('--rounds must be >= 1; got %d' % args.rounds)
    if not os.path.isdir('/proc/self'):
        parser.error('this benchmark reads memory from /proc, which only Linux has')
    return args


def main() -> None:
    args = parse_args()
    folders = prepare_folders(args.image_root, args.sizes, args.seed)
    rounds = {(size, count): [] for size in args.sizes for count in (1, args.workers)}
    # Rounds go through every case in turn, so a slow spell of a shared
    # machine falls on all of them rather than on one.
    for round_index in range(args.rounds):
        for (size, count), done in rounds.items():
            done.append(convert(folders[size], size, count, args.poll))
            print('round %d  %5d images  %-9s  %7.1f images/sec  tree peak %.0f MB'
                  % (round_index + 1, size, _workers(count), done[-1].images_per_sec,
                     done[-1].tree_peak_mb), flush=True)
    runs = [best_of(done) for done in rounds.values()]
    ratios = print_report(runs, args.sizes, args.workers)
    if args.json:
        write_json(args.json, args, runs, ratios)


if __name__ == '__main__':
    main()
