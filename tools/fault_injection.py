"""SIGKILLs the converter and the trainer at seeded random moments; checks that a rerun completes.

    python tools/fault_injection.py --runs=20 --seed=0 --target=both \\
        --work_dir=/tmp/faults --report=/tmp/faults.json

Both commands are driven through their command lines, as a user runs them.

converter: an image folder is made (three classes of seeded noise images,
JPEG and PNG, plus a truncated JPEG and a text file named .jpg, which are
rejected, and a notes.txt, which is skipped) and converted once, uninterrupted,
into the reference directory. Each run converts it into a fresh directory and
kills the converter (its whole process group) after a seeded random delay,
counted from its start (one run in three; up to 1.1 times the reference run's
whole life, so some kills land during start-up and some after the work) or
from the moment its dataset directory appears (up to 1.1 times the reference's
writing: from that moment to its dataset_info.json). A directory killed before the end must not look
complete: if its dataset_info.json exists, every file must already equal the
reference. The same command is then rerun to completion, and every file of the
directory (hidden ones included) must equal the reference byte for byte, but
for `.conversion.lock`, which says who held the directory's conversion lock
(pid, command line, start time): it is compared by presence alone, and a
killed run may leave it (datasets/dataset_lock.py). Neither
conversion_report.json nor dataset_info.json holds a timestamp or the output
path (only the shared image folder's path), so both are compared whole.

trainer: the embedded digits dataset is converted once; each run trains LeNet
for --train_steps steps into a fresh train_dir, saving every
--save_interval_secs and logging every step to metrics.jsonl, and is killed
after a random delay counted from its start or from its first logged step
(over the reference run's life, or its training up to the final checkpoint).
Once it is dead, the newest intact checkpoint (its index readable, every data
shard there, every tensor readable) is noted. The same command is rerun to
completion; then the rerun must have resumed from exactly that checkpoint
(its "Resuming from ... at step N" line; no such line when there was none),
end at global step --train_steps (read from the newest checkpoint, which the
`checkpoint` state file must name too), keep metrics.jsonl readable, and
leave no temporary file (of a save, or of an atomic write). No more than one
save interval of work may have been lost: the last step logged before the kill came at most
--save_interval_secs, plus the longest gap between two logged steps of the
killed run (one step, or a save), after the checkpoint it resumed from was
written (or after the first logged step, when there was none).

A summary table is printed and, with --report, written as JSON. The exit
code is 0 when every run ended complete and correct, 1 when one did not (the
work directory is kept for the logs), 2 when the runs could not be made (bad
flags, a work directory in use, a reference run that failed).
"""

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

# Run from a checkout: the project's packages come from the repository.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from datasets.dataset_lock import LOCK_FILENAME  # noqa: E402
from slim_classifier.errors import UserError  # noqa: E402
from slim_classifier.runtime.files import check_replaceable, write_atomically  # noqa: E402

CONVERTER = os.path.join(REPO, 'download_and_convert_data.py')
TRAINER = os.path.join(REPO, 'train_image_classifier.py')
DATASET_NAME = 'faults'
CLASS_NAMES = ('circles', 'squares', 'stripes')
INFO_FILENAME = 'dataset_info.json'
METRICS_FILENAME = 'metrics.jsonl'
# Files of a converted dataset whose bytes differ from run to run by design.
VARYING_FILES = {LOCK_FILENAME: 'who held the conversion lock: pid, command line, start time'}
TARGETS = ('converter', 'trainer')
# A kill is drawn over this share of the span the reference run took, so
# that some land after the command has finished.
SPAN_FACTOR = 1.1
# A command left running this long is a hang, and a failed run.
COMMAND_TIMEOUT_SECS = 600.0
_POLL_SECS = 0.002
_RESUMING = re.compile(r'Resuming from (\S+) at step (\d+)')
_NUMBERED_INDEX = re.compile(r'model\.ckpt-(\d+)\.index')
# A checkpoint save's temporaries, and those of slim_classifier/runtime/files.py.
_LEFTOVER = re.compile(r'model\.ckpt-\d+_temp.*|\..+\.tmp-[0-9a-f]{8}')


class FaultInjectionError(UserError):
    """The runs cannot be made: a flag, the work directory or a reference run."""


@dataclasses.dataclass(frozen=True)
class Attempt:
    """How one run of a command ended.

    Attributes:
        returncode: its exit code, negative for the signal that ended it.
        elapsed_secs: from its start to its end.
        work_started_secs: when its work began (its work marker appeared), None if never.
        work_done_secs: when its work was done (its done marker appeared), None if never.
        log_path: its stdout and stderr.
    """
    returncode: int
    elapsed_secs: float
    work_started_secs: float | None
    work_done_secs: float | None
    log_path: str

    @property
    def killed(self) -> bool:
        """Whether SIGKILL ended it before it finished by itself."""
        return self.returncode == -signal.SIGKILL

    def log_tail(self, lines: int = 3) -> str:
        with open(self.log_path, encoding='utf-8', errors='replace') as log:
            return ' | '.join(log.read().strip().splitlines()[-lines:])


@dataclasses.dataclass(frozen=True)
class KillPlan:
    """When to kill: `delay_secs` after the command's start, or after its work's start.

    Attributes:
        anchor: 'start' or 'work' (the appearance of its work marker).
        delay_secs: how long after the anchor.
    """
    anchor: str
    delay_secs: float


@dataclasses.dataclass
class Reference:
    """What an uninterrupted run of a command took.

    Attributes:
        total_secs: from start to exit.
        work_secs: from the start of its work to its end (the process exits later).
    """
    total_secs: float
    work_secs: float

    def draw_kill(self, rng: random.Random) -> KillPlan:
        """A seeded kill: one in three counted from the start, else from the work's start."""
        anchor = 'start' if rng.random() < 1 / 3 else 'work'
        span = self.total_secs if anchor == 'start' else self.work_secs
        return KillPlan(anchor, round(rng.uniform(0, SPAN_FACTOR * span), 3))


@dataclasses.dataclass
class RunRecord:
    """One run: its kill, what was found, and what went wrong (nothing, if it passed)."""
    index: int
    anchor: str
    delay_secs: float
    killed: bool
    facts: dict = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)


def run_command(command: list[str], log_path: str, work_marker: str | None = None,
                done_marker: str | None = None, kill: KillPlan | None = None) -> Attempt:
    """Runs `command` in a process group of its own, SIGKILLing the group as `kill` says.

    Args:
        command: the command line.
        log_path: where its stdout and stderr go.
        work_marker: a path whose appearance marks the start of its work.
        done_marker: a path whose appearance marks the end of its work.
        kill: when to kill it; None lets it finish.

    Returns:
        How it ended. A command that runs past `COMMAND_TIMEOUT_SECS` is killed.
    """
    with open(log_path, 'w', encoding='utf-8') as log:
        start = time.monotonic()
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        work_started = work_done = None
        deadline = start + COMMAND_TIMEOUT_SECS
        if kill is not None and kill.anchor == 'start':
            deadline = start + kill.delay_secs
        try:
            while process.poll() is None and time.monotonic() < deadline:
                if work_started is None and work_marker and os.path.exists(work_marker):
                    work_started = time.monotonic() - start
                    if kill is not None and kill.anchor == 'work':
                        deadline = start + work_started + kill.delay_secs
                if work_done is None and done_marker and os.path.exists(done_marker):
                    work_done = time.monotonic() - start
                time.sleep(_POLL_SECS)
        finally:  # also when this tool is interrupted: its own session keeps Ctrl-C from it
            if process.poll() is None:
                _kill_group(process.pid)
        returncode = process.wait()
        elapsed = time.monotonic() - start
    return Attempt(returncode, elapsed, work_started, work_done, log_path)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended between the check and the kill
        pass


def _listing(directory: str) -> list[str]:
    return os.listdir(directory) if os.path.isdir(directory) else []


def file_digests(directory: str) -> dict[str, str]:
    """The sha256 of every file below `directory` (hidden ones too), by relative path."""
    digests = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as data:
                digests[os.path.relpath(path, directory)] = hashlib.sha256(data.read()).hexdigest()
    return digests


def differences(directory: str, reference_dir: str, reference: dict[str, str],
                ignored: frozenset[str] = frozenset()) -> list[str]:
    """How the files of `directory` differ from the reference; empty when identical.

    A file of `VARYING_FILES` only has to be there (or not) as in the
    reference; the `ignored` files are not compared at all.
    """
    found = {name: digest for name, digest in file_digests(directory).items()
             if name not in ignored}
    reference = {name: digest for name, digest in reference.items() if name not in ignored}
    problems = []
    missing = sorted(set(reference) - set(found))
    if missing:
        problems.append('missing %s' % ', '.join(missing))
    extra = sorted(set(found) - set(reference))
    if extra:
        problems.append('extra %s' % ', '.join(extra))
    for name in sorted(set(found) & set(reference)):
        if found[name] != reference[name] and name not in VARYING_FILES:
            problems.append('%s differs%s' % (name, _json_difference(
                os.path.join(directory, name), os.path.join(reference_dir, name))))
    return problems


def _json_difference(path: str, reference_path: str) -> str:
    """' (keys a, b)' for two JSON objects whose top-level values differ there, else ''."""
    if not path.endswith('.json'):
        return ''
    try:
        with open(path, encoding='utf-8') as one, open(reference_path, encoding='utf-8') as other:
            found, expected = json.load(one), json.load(other)
    except (OSError, ValueError):
        return ' (not readable JSON)'
    if not (isinstance(found, dict) and isinstance(expected, dict)):
        return ''
    keys = sorted(key for key in set(found) | set(expected) if found.get(key) != expected.get(key))
    return ' (keys %s)' % ', '.join(keys) if keys else ''


def make_image_folder(image_dir: str, seed: int, count: int = 40) -> None:
    """Writes `count` seeded noise images in three class folders, plus files to reject and skip.

    Images are 160 to 319 pixels square, JPEG and PNG in turn (PNGs are
    re-encoded by the converter, JPEGs kept). A truncated JPEG and a text
    file named .jpg are rejected; notes.txt is skipped.
    """
    rng = np.random.default_rng(seed)
    for class_name in CLASS_NAMES:
        os.makedirs(os.path.join(image_dir, class_name))
    for index in range(count):
        size = int(rng.integers(160, 320))
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        image_format = ('JPEG', 'PNG')[index % 2]
        path = os.path.join(image_dir, CLASS_NAMES[index % len(CLASS_NAMES)],
                            'image_%03d.%s' % (index, image_format.lower().replace('jpeg', 'jpg')))
        Image.fromarray(pixels).save(path, format=image_format)
    with open(os.path.join(image_dir, CLASS_NAMES[0], 'image_000.jpg'), 'rb') as whole:
        head = whole.read(600)
    with open(os.path.join(image_dir, CLASS_NAMES[1], 'truncated.jpg'), 'wb') as truncated:
        truncated.write(head)
    with open(os.path.join(image_dir, CLASS_NAMES[2], 'not_an_image.jpg'), 'w') as text:
        text.write('this is text, not a JPEG\n')
    with open(os.path.join(image_dir, CLASS_NAMES[2], 'notes.txt'), 'w') as notes:
        notes.write('skipped: not an image by its extension\n')


def converter_command(image_dir: str, dataset_dir: str, num_shards: int) -> list[str]:
    return [sys.executable, CONVERTER, '--dataset_name=%s' % DATASET_NAME,
            '--image_dir=%s' % image_dir, '--dataset_dir=%s' % dataset_dir,
            '--num_shards=%d' % num_shards]


def run_converter(args: argparse.Namespace, work_dir: str) -> tuple[dict, list[RunRecord]]:
    """Makes the image folder and the reference conversion, then kills and reruns `args.runs` times.

    Returns:
        The reference (durations and digests) and one record per run.
    """
    rng = random.Random('converter:%d' % args.seed)
    image_dir = os.path.join(work_dir, 'images')
    make_image_folder(image_dir, args.seed)
    logs = os.path.join(work_dir, 'logs')
    reference_dir = os.path.join(work_dir, 'converter_reference')
    attempt = run_command(converter_command(image_dir, reference_dir, args.num_shards),
                          os.path.join(logs, 'converter_reference.log'), reference_dir,
                          os.path.join(reference_dir, INFO_FILENAME))
    reference = _reference(attempt, 'conversion')
    digests = file_digests(reference_dir)
    records = []
    for index in range(args.runs):
        dataset_dir = os.path.join(work_dir, 'converter_runs', 'run_%03d' % index)
        command = converter_command(image_dir, dataset_dir, args.num_shards)
        plan = reference.draw_kill(rng)
        attempt = run_command(command, os.path.join(logs, 'converter_%03d_killed.log' % index),
                              dataset_dir, kill=plan)
        record = RunRecord(index, plan.anchor, plan.delay_secs, attempt.killed)
        _check_killed_conversion(attempt, dataset_dir, reference_dir, digests, record)
        rerun = run_command(command, os.path.join(logs, 'converter_%03d_rerun.log' % index))
        if rerun.returncode != 0:
            record.problems.append('the rerun exited %d: %s' % (rerun.returncode,
                                                                rerun.log_tail()))
        else:
            record.problems.extend('after the rerun: %s' % problem for problem in
                                   differences(dataset_dir, reference_dir, digests))
        records.append(record)
        _print_run('converter', record)
    return {'total_secs': round(reference.total_secs, 3),
            'work_secs': round(reference.work_secs, 3), 'files': digests,
            'compared_by_presence': VARYING_FILES}, records


def _reference(attempt: Attempt, what: str) -> Reference:
    """What an uninterrupted run took, if it succeeded."""
    if attempt.returncode != 0 or None in (attempt.work_started_secs, attempt.work_done_secs):
        raise FaultInjectionError('the uninterrupted reference %s failed (exit %d): %s; see %s'
                                  % (what, attempt.returncode, attempt.log_tail(),
                                     attempt.log_path))
    return Reference(attempt.elapsed_secs, attempt.work_done_secs - attempt.work_started_secs)


def _check_killed_conversion(attempt: Attempt, dataset_dir: str, reference_dir: str,
                             digests: dict[str, str], record: RunRecord) -> None:
    """A killed conversion looks complete only if it is; one that was not killed succeeded."""
    looks_complete = os.path.exists(os.path.join(dataset_dir, INFO_FILENAME))
    record.facts['looked_complete'] = looks_complete
    record.facts['shards_at_kill'] = sum(name.startswith(DATASET_NAME + '_')
                                         for name in _listing(dataset_dir))
    if not attempt.killed:
        if attempt.returncode != 0:
            record.problems.append('the run exited %d before the kill: %s'
                                   % (attempt.returncode, attempt.log_tail()))
        return
    if looks_complete:
        incomplete = differences(dataset_dir, reference_dir, digests, frozenset(VARYING_FILES))
        if incomplete:
            record.problems.append('killed with %s present, but the dataset is not complete: %s'
                                   % (INFO_FILENAME, '; '.join(incomplete)))


def trainer_command(dataset_dir: str, train_dir: str, steps: int,
                    save_interval_secs: int) -> list[str]:
    return [sys.executable, TRAINER, '--dataset_name=digits', '--dataset_dir=%s' % dataset_dir,
            '--model_name=lenet', '--train_dir=%s' % train_dir,
            '--max_number_of_steps=%d' % steps, '--save_interval_secs=%d' % save_interval_secs,
            '--log_every_n_steps=1', '--batch_size=16', '--optimizer=sgd',
            '--learning_rate_decay_type=fixed', '--num_readers=1',
            '--num_preprocessing_threads=1']


def _tensorflow():
    """TensorFlow's v1 API, imported on first use: only the trainer's checks need it.

    Its C++ libraries print banners while loading, before any log level
    applies; stderr is closed meanwhile, as the commands do (cli/runner.py).
    """
    if 'tensorflow' not in sys.modules:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            importlib.import_module('tensorflow')
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    import tensorflow.compat.v1 as tf  # pylint: disable=import-outside-toplevel
    return tf


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """An intact checkpoint: its prefix, global step, and when its index was written."""
    prefix: str
    step: int
    written_at: float


def newest_intact_checkpoint(train_dir: str) -> Checkpoint | None:
    """The newest `model.ckpt-N` whose index reads, data shards are all there and tensors read."""
    tf = _tensorflow()
    numbered = sorted((int(match.group(1)), match.group(0)[:-len('.index')])
                      for match in map(_NUMBERED_INDEX.fullmatch, _listing(train_dir)) if match)
    for _, name in reversed(numbered):
        prefix = os.path.join(train_dir, name)
        shards = tf.io.gfile.glob(prefix + '.data-*-of-*')
        if not shards or len(shards) != int(shards[0].rsplit('-of-', 1)[1]):
            continue
        try:
            reader = tf.train.NewCheckpointReader(prefix)
            # The input pipeline's saved state (--deterministic) is a variant NumPy cannot hold.
            for variable, dtype in reader.get_variable_to_dtype_map().items():
                if dtype != tf.variant:
                    reader.get_tensor(variable)
            step = int(reader.get_tensor('global_step'))
        except (tf.errors.OpError, ValueError, RuntimeError):
            continue
        return Checkpoint(prefix, step, os.stat(prefix + '.index').st_mtime)
    return None


def metrics_records(train_dir: str) -> tuple[list[dict], list[str]]:
    """The records of metrics.jsonl, and its lines that are not JSON objects with a step."""
    path = os.path.join(train_dir, METRICS_FILENAME)
    if not os.path.exists(path):
        return [], []
    records, problems = [], []
    with open(path, encoding='utf-8', errors='replace') as metrics:
        for number, line in enumerate(metrics, start=1):
            try:
                record = json.loads(line)
                records.append({'step': int(record['step']),
                                'wall_time': float(record['wall_time'])})
            except (ValueError, KeyError, TypeError):
                problems.append('%s line %d is not a metrics record: %r'
                                % (METRICS_FILENAME, number, line[:80]))
    return records, problems


def lost_work(records: list[dict], checkpoint: Checkpoint | None) -> dict:
    """What a kill lost: the steps and seconds logged after the checkpoint a rerun resumes from.

    Args:
        records: the killed run's metrics records.
        checkpoint: the newest intact checkpoint at the kill.

    Returns:
        last_step (logged before the kill), lost_steps, lost_secs, and
        allowed_extra_secs: the longest gap between two logged steps.
    """
    if not records:
        return {'last_step': None, 'lost_steps': 0, 'lost_secs': 0.0, 'allowed_extra_secs': 0.0}
    last = max(records, key=lambda record: record['wall_time'])
    times = sorted(record['wall_time'] for record in records)
    since = checkpoint.written_at if checkpoint else times[0]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    return {'last_step': last['step'],
            'lost_steps': last['step'] - (checkpoint.step if checkpoint else 0),
            'lost_secs': round(max(0.0, last['wall_time'] - since), 3),
            'allowed_extra_secs': round(max(gaps, default=0.0), 3)}


def run_trainer(args: argparse.Namespace, work_dir: str) -> tuple[dict, list[RunRecord]]:
    """Converts digits and trains once uninterrupted, then kills and reruns `args.runs` times.

    Returns:
        The reference run's durations and one record per run.
    """
    rng = random.Random('trainer:%d' % args.seed)
    logs = os.path.join(work_dir, 'logs')
    digits_dir = os.path.join(work_dir, 'digits')
    attempt = run_command([sys.executable, CONVERTER, '--dataset_name=digits',
                           '--dataset_dir=%s' % digits_dir],
                          os.path.join(logs, 'digits.log'), digits_dir,
                          os.path.join(digits_dir, INFO_FILENAME))
    _reference(attempt, 'digits conversion')
    reference_dir = os.path.join(work_dir, 'trainer_reference')
    attempt = run_command(
        trainer_command(digits_dir, reference_dir, args.train_steps, args.save_interval_secs),
        os.path.join(logs, 'trainer_reference.log'), os.path.join(reference_dir, METRICS_FILENAME),
        os.path.join(reference_dir, 'model.ckpt-%d.index' % args.train_steps))
    reference = _reference(attempt, 'training')
    records = []
    for index in range(args.runs):
        train_dir = os.path.join(work_dir, 'trainer_runs', 'run_%03d' % index)
        command = trainer_command(digits_dir, train_dir, args.train_steps,
                                  args.save_interval_secs)
        plan = reference.draw_kill(rng)
        attempt = run_command(command, os.path.join(logs, 'trainer_%03d_killed.log' % index),
                              os.path.join(train_dir, METRICS_FILENAME), kill=plan)
        record = RunRecord(index, plan.anchor, plan.delay_secs, attempt.killed)
        at_kill = _check_killed_training(attempt, train_dir, args, record)
        rerun = run_command(command, os.path.join(logs, 'trainer_%03d_rerun.log' % index))
        if rerun.returncode != 0:
            record.problems.append('the rerun exited %d: %s' % (rerun.returncode,
                                                                rerun.log_tail()))
        else:
            _check_resumed(rerun, at_kill, record)
            _check_finished(train_dir, args.train_steps, record)
        records.append(record)
        _print_run('trainer', record)
    return {'total_secs': round(reference.total_secs, 3),
            'work_secs': round(reference.work_secs, 3)}, records


def _check_killed_training(attempt: Attempt, train_dir: str, args: argparse.Namespace,
                           record: RunRecord) -> Checkpoint | None:
    """Notes the newest intact checkpoint at the kill and checks what the kill lost."""
    at_kill = newest_intact_checkpoint(train_dir)
    record.facts['checkpoint_at_kill'] = at_kill.step if at_kill else None
    if not attempt.killed:
        if attempt.returncode != 0:
            record.problems.append('the run exited %d before the kill: %s'
                                   % (attempt.returncode, attempt.log_tail()))
        return at_kill
    lost = lost_work(metrics_records(train_dir)[0], at_kill)
    record.facts.update(lost)
    allowed = args.save_interval_secs + lost['allowed_extra_secs']
    if lost['lost_secs'] > allowed:
        record.problems.append(
            'the kill lost %.3f s of training (steps %s to %s), more than one save interval '
            '(%d s, plus %.3f s for a step or a save)'
            % (lost['lost_secs'], at_kill.step if at_kill else 0, lost['last_step'],
               args.save_interval_secs, lost['allowed_extra_secs']))
    return at_kill


def _check_resumed(rerun: Attempt, at_kill: Checkpoint | None, record: RunRecord) -> None:
    """The rerun resumed from the newest intact checkpoint at the kill, or started afresh."""
    with open(rerun.log_path, encoding='utf-8', errors='replace') as log:
        resumed = _RESUMING.search(log.read())
    record.facts['resumed_from'] = int(resumed.group(2)) if resumed else None
    if at_kill is None:
        if resumed:
            record.problems.append('no intact checkpoint was left, yet the rerun resumed from '
                                   '%s' % resumed.group(1))
        return
    if resumed is None:
        record.problems.append('the rerun did not resume from %s' % at_kill.prefix)
    elif (os.path.basename(resumed.group(1)) != os.path.basename(at_kill.prefix)
          or int(resumed.group(2)) != at_kill.step):
        record.problems.append('the rerun resumed from %s at step %s, not from %s at step %d'
                               % (resumed.group(1), resumed.group(2), at_kill.prefix,
                                  at_kill.step))


def _check_finished(train_dir: str, steps: int, record: RunRecord) -> None:
    """Training ended at `steps`, named by the state file, with no temporaries left."""
    final = newest_intact_checkpoint(train_dir)
    record.facts['final_step'] = final.step if final else None
    if final is None or final.step != steps:
        record.problems.append('after the rerun the newest intact checkpoint is at step %s, not '
                               '%d' % (final.step if final else 'none', steps))
    stated = _tensorflow().train.latest_checkpoint(train_dir)
    if final is not None and (stated is None
                              or os.path.basename(stated) != os.path.basename(final.prefix)):
        record.problems.append('the checkpoint state file names %s, not %s'
                               % (stated, os.path.basename(final.prefix)))
    leftovers = sorted(name for name in _listing(train_dir) if _LEFTOVER.fullmatch(name))
    if leftovers:
        record.problems.append('temporary files remain: %s' % ', '.join(leftovers))
    record.problems.extend(metrics_records(train_dir)[1])


def _print_run(target: str, record: RunRecord) -> None:
    outcome = 'killed' if record.killed else 'finished first'
    print('%s run %d: kill %.3f s after %s, %s: %s'
          % (target, record.index, record.delay_secs, record.anchor, outcome,
             '; '.join(record.problems) or 'complete and correct'), flush=True)


def counts(records: list[RunRecord]) -> dict[str, int]:
    """How many runs were killed, finished first, ended correct, or failed."""
    return {'runs': len(records),
            'killed_before_completion': sum(record.killed for record in records),
            'completed_before_kill': sum(not record.killed for record in records),
            'correct_after_rerun': sum(not record.problems for record in records),
            'failures': sum(bool(record.problems) for record in records)}


def findings(records: list[RunRecord]) -> dict[str, int | float]:
    """What the killed runs left: complete-looking datasets, checkpoints, lost work."""
    killed = [record for record in records if record.killed]
    found = {}
    if any('looked_complete' in record.facts for record in killed):
        found['killed_while_writing_shards'] = sum(
            record.facts['shards_at_kill'] > 0 and not record.facts['looked_complete']
            for record in killed)
        found['killed_looking_complete'] = sum(record.facts['looked_complete']
                                               for record in killed)
    if any('lost_secs' in record.facts for record in killed):
        found['killed_before_first_checkpoint'] = sum(
            record.facts['checkpoint_at_kill'] is None for record in killed)
        found['killed_after_final_checkpoint'] = sum(
            record.facts['checkpoint_at_kill'] == record.facts.get('final_step')
            for record in killed)
        found['most_lost_steps'] = max(record.facts['lost_steps'] for record in killed)
        found['most_lost_secs'] = max(record.facts['lost_secs'] for record in killed)
    return found


def summary_lines(results: dict) -> list[str]:
    """The table of counts by target, then every failure."""
    header = ('target', 'runs', 'killed', 'finished first', 'correct after rerun', 'failed',
              'seconds')
    rows = [header]
    for target, result in results['targets'].items():
        tally = result['counts']
        rows.append((target, *(str(tally[key]) for key in (
            'runs', 'killed_before_completion', 'completed_before_kill', 'correct_after_rerun',
            'failures')), '%.0f' % result['elapsed_secs']))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ['  '.join(cell.rjust(width) if column else cell.ljust(width)
                       for column, (cell, width) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    for target, result in results['targets'].items():
        if result['findings']:
            lines.append('%s: %s' % (target, ', '.join(
                '%s %s' % (name.replace('_', ' '), value)
                for name, value in result['findings'].items())))
    for target, result in results['targets'].items():
        for run in result['runs']:
            lines.extend('%s run %d failed: %s' % (target, run['index'], problem)
                         for problem in run['problems'])
    return lines


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError('must be a positive integer; got %r' % text)
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=_positive_int, default=20,
                        help='killed runs per target (default 20)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds the kills and the image folder (default 0)')
    parser.add_argument('--target', choices=TARGETS + ('both',), default='both',
                        help='the command to kill (default both)')
    parser.add_argument('--work_dir', default=None,
                        help='a new or empty directory for the datasets, runs and logs; by '
                             'default a temporary one, removed when every run passed')
    parser.add_argument('--report', default=None, help='also write the results to this JSON file')
    parser.add_argument('--num_shards', type=_positive_int, default=3,
                        help='converter shards per split (default 3)')
    parser.add_argument('--train_steps', type=_positive_int, default=150,
                        help='--max_number_of_steps of each training run (default 150)')
    parser.add_argument('--save_interval_secs', type=_positive_int, default=1,
                        help="the trainer's --save_interval_secs (default 1)")
    return parser.parse_args(argv)


def prepare_work_dir(work_dir: str | None) -> tuple[str, bool]:
    """The work directory, and whether it is a temporary one of ours.

    Raises:
        FaultInjectionError: if `work_dir` is a file or a directory that is not empty.
    """
    if work_dir is None:
        work_dir = tempfile.mkdtemp(prefix='fault_injection-')
        created = True
    else:
        if os.path.exists(work_dir) and (not os.path.isdir(work_dir) or os.listdir(work_dir)):
            raise FaultInjectionError('--work_dir %s must be a new or empty directory: the runs '
                                      'write datasets and train dirs there' % work_dir)
        created = False
    os.makedirs(os.path.join(work_dir, 'logs'), exist_ok=True)
    return os.path.abspath(work_dir), created


def _is_report(path: str) -> bool:
    """Whether `path` is a report this tool wrote, which a new one may replace."""
    try:
        with open(path, encoding='utf-8') as report:
            return json.load(report).get('tool') == 'fault_injection'
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.report:
        check_replaceable(args.report, _is_report, 'a fault-injection report')
    work_dir, temporary = prepare_work_dir(args.work_dir)
    print('Work directory: %s' % work_dir, flush=True)
    targets = TARGETS if args.target == 'both' else (args.target,)
    runners = {'converter': run_converter, 'trainer': run_trainer}
    results = {'tool': 'fault_injection', 'seed': args.seed, 'runs': args.runs,
               'work_dir': work_dir, 'train_steps': args.train_steps,
               'save_interval_secs': args.save_interval_secs, 'num_shards': args.num_shards,
               'targets': {}}
    for target in targets:
        start = time.monotonic()
        reference, records = runners[target](args, work_dir)
        results['targets'][target] = {
            'elapsed_secs': round(time.monotonic() - start, 1), 'reference': reference,
            'counts': counts(records), 'findings': findings(records),
            'runs': [dataclasses.asdict(record) for record in records]}
    passed = all(not result['counts']['failures'] for result in results['targets'].values())
    results['passed'] = passed
    print('\n'.join(summary_lines(results)))
    if args.report:
        write_atomically(args.report, json.dumps(results, indent=2) + '\n')
        print('Report: %s' % args.report)
    if passed and temporary:
        shutil.rmtree(work_dir)
    return 0 if passed else 1


def run() -> None:
    try:
        sys.exit(main(sys.argv[1:]))
    except (UserError, FileExistsError) as error:
        print('error: %s' % error, file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    run()
