"""The cost of evaluating while training: the trainer with and without --eval_every_n_steps.

LeNet on the digits records (batch 32, SGD with momentum), in this process
through the trainer's library (`training.trainer.train`, what
train_image_classifier.py runs), `--steps` steps each run, round after round,
the two runs of a round alternating which goes first:

* without evaluation, and with an evaluation every `--eval_every` steps (an
  exact pass over the test split, 359 images: digits has no validation
  split): the wall time of each whole run, and the training rate of each
  (images over the run's wall time, evaluations included);
* the cost of one in-training evaluation: the extra wall time of the run
  with evaluations, divided by the number of evaluations it made (the extra
  checkpoints, the evaluation graph built once, the passes, eval/ and best/
  written);
* against it, one standalone exact pass over the same split, on the final
  checkpoint of that round, with the in-training evaluation's own settings
  (`periodic_eval.eval_config`): cold, `evaluator.evaluate(config)` in this
  process (graph, session, restore, pass, metrics.json, pictures, events:
  what eval_image_classifier.py does after its imports), and warm, a built
  `Evaluator` evaluating it again (restore included), the median of
  `--passes`.

Where an in-training evaluation spends its time is measured by wrapping the
functions that do each part (`call_timer.py`): the checkpoint saves, the
evaluator's construction, the restore, the pipeline restart with the pass,
the metrics, the writing of eval/ and the copy into best/. Medians over the
rounds. Every figure is taken in wall-clock time and in the process's CPU
time (all its threads): on a machine shared with other work the wall clock
swings with the load, CPU time holds far steadier. The goal, one evaluation
every N steps costing no more than the warm pass itself, is printed with its
ratio in both.

    python benchmarks/bench_train_eval.py
    python benchmarks/bench_train_eval.py --dataset_dir=/tmp/digits --rounds 5 --steps 400
"""

import argparse
import contextlib
import dataclasses
import logging
import os
import statistics
import tempfile
import time

import common  # sets sys.path and logging first

from call_timer import CallTimer
from slim_classifier.evaluation import evaluator, metrics
from slim_classifier.runtime import checkpoints
from slim_classifier.training import loop, periodic_eval, trainer

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(BENCHMARKS, 'results', 'bench_train_eval.json')
GOAL = 1.0  # an in-training evaluation's cost over the warm standalone pass, at most
# Where the time of the runs goes: label -> the function that spends it.
PROFILED = {
    'checkpoint saves': (loop._Records, '_save'),
    'evaluator built': (periodic_eval.PeriodicEvaluation, '__init__'),
    'evaluations (all of the below)': (periodic_eval.PeriodicEvaluation, 'evaluate'),
    'restore': (checkpoints.CheckpointRestorer, 'restore'),
    'pipeline restart + pass': (evaluator.Evaluator, '_one_pass'),
    'metrics (evaluation_summary)': (metrics, 'evaluation_summary'),
    'eval/ written (metrics.json, pictures, events)': (evaluator.ResultWriter, 'write'),
    'best/ copied': (periodic_eval, 'keep_best'),
}


def train_config(args: argparse.Namespace, train_dir: str, eval_every: int | None
                 ) -> trainer.TrainConfig:
    return trainer.TrainConfig(
        train_dir=train_dir, dataset_dir=args.dataset_dir, dataset_name='digits',
        model_name='lenet', batch_size=args.batch_size, optimizer='momentum',
        learning_rate=0.01, learning_rate_decay_type='fixed', weight_decay=0.0,
        max_number_of_steps=args.steps, log_every_n_steps=args.steps,
        save_interval_secs=86400, save_summaries_secs=86400, seed=1,
        eval_every_n_steps=eval_every)


def timed_run(args: argparse.Namespace, work_dir: str, name: str, eval_every: int | None,
              timer: CallTimer) -> dict:
    """One training run: its wall seconds, evaluations, final checkpoint and profile."""
    train_dir = os.path.join(work_dir, name)
    timer.take()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = trainer.train(train_config(args, train_dir, eval_every))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    profile = {label: dataclasses.asdict(spent) for label, spent in timer.take().items()}
    rows_path = os.path.join(train_dir, periodic_eval.EVAL_METRICS_FILENAME)
    evaluations = 0
    if os.path.exists(rows_path):
        with open(rows_path) as rows:
            evaluations = sum(1 for line in rows if line.strip())
    return {'seconds': seconds, 'cpu_seconds': cpu_seconds, 'evaluations': evaluations,
            'checkpoint': result.checkpoint,
            'images_per_sec': args.steps * args.batch_size / seconds,
            'profile': profile, 'train_dir': train_dir}


def standalone_passes(args: argparse.Namespace, run: dict) -> dict:
    """The cold and the warm standalone pass over the split, on the run's final checkpoint."""
    config = dataclasses.replace(
        periodic_eval.eval_config(train_config(args, run['train_dir'], args.eval_every)),
        eval_dir=os.path.join(run['train_dir'], 'standalone_eval'),
        checkpoint_path=run['checkpoint'])
    start, cpu_start = time.perf_counter(), time.process_time()
    examples = evaluator.evaluate(config)['num_examples']
    cold = time.perf_counter() - start, time.process_time() - cpu_start
    warm = []
    with evaluator.Evaluator(config) as ours:
        for _ in range(args.passes):
            start, cpu_start = time.perf_counter(), time.process_time()
            ours.evaluate(run['checkpoint'])
            warm.append((time.perf_counter() - start, time.process_time() - cpu_start))
    return {'cold_seconds': cold[0], 'cold_cpu_seconds': cold[1],
            'warm_seconds': statistics.median(wall for wall, _ in warm),
            'warm_cpu_seconds': statistics.median(cpu for _, cpu in warm),
            'examples': examples}


def measure(args: argparse.Namespace, work_dir: str) -> dict:
    rounds = []
    with CallTimer(PROFILED) as timer:
        for index in range(args.rounds):
            runs = {}
            order = (('plain', None), ('evaluating', args.eval_every))
            for name, every in (order if index % 2 == 0 else order[::-1]):
                runs[name] = timed_run(args, work_dir, '%s_%d' % (name, index), every, timer)
            standalone = standalone_passes(args, runs['evaluating'])
            timer.take()
            evaluations = runs['evaluating']['evaluations']
            cost = {key: (runs['evaluating'][key] - runs['plain'][key]) / evaluations
                    for key in ('seconds', 'cpu_seconds')}
            rounds.append({'plain': runs['plain'], 'evaluating': runs['evaluating'],
                           'standalone': standalone,
                           'cost_per_evaluation_seconds': cost['seconds'],
                           'cost_per_evaluation_cpu_seconds': cost['cpu_seconds']})
            _log('round %d: %.2f s without, %.2f s with %d evaluations; each %.3f s (%.3f '
                 'CPU-s); standalone pass %.3f s (%.3f CPU-s) warm, %.3f s cold' % (
                     index + 1, runs['plain']['seconds'], runs['evaluating']['seconds'],
                     evaluations, cost['seconds'], cost['cpu_seconds'],
                     standalone['warm_seconds'], standalone['warm_cpu_seconds'],
                     standalone['cold_seconds']))
    return summarize(args, rounds)


def summarize(args: argparse.Namespace, rounds: list[dict]) -> dict:
    def median(values):
        return statistics.median(list(values))
    evaluations = rounds[0]['evaluating']['evaluations']
    summary = {'evaluations': evaluations, 'examples': rounds[0]['standalone']['examples']}
    for unit in ('seconds', 'cpu_seconds'):
        cost = median(r['cost_per_evaluation_' + unit] for r in rounds)
        warm = median(r['standalone']['warm_' + unit] for r in rounds)
        cold = median(r['standalone']['cold_' + unit] for r in rounds)
        suffix = '' if unit == 'seconds' else '_cpu'
        summary.update({
            'plain_' + unit: median(r['plain'][unit] for r in rounds),
            'evaluating_' + unit: median(r['evaluating'][unit] for r in rounds),
            'cost_per_evaluation_' + unit: cost,
            'standalone_warm_' + unit: warm, 'standalone_cold_' + unit: cold,
            'cost_over_warm_pass' + suffix: cost / warm,
            'cost_over_cold_pass' + suffix: cost / cold,
            # Per evaluation: what the evaluating run spent in each part, less what the
            # plain run spent there (its one final checkpoint save).
            'cost_parts_' + unit: {label: median(
                (r['evaluating']['profile'][label][unit]
                 - r['plain']['profile'][label][unit]) / evaluations for r in rounds)
                for label in PROFILED},
        })
    summary['plain_images_per_sec'] = median(r['plain']['images_per_sec'] for r in rounds)
    summary['evaluating_images_per_sec'] = median(r['evaluating']['images_per_sec']
                                                  for r in rounds)
    summary['goal'] = {'ratio': summary['cost_over_warm_pass'],
                       'cpu_ratio': summary['cost_over_warm_pass_cpu'], 'target': GOAL,
                       'met': _within_goal(summary['cost_over_warm_pass']),
                       'cpu_met': _within_goal(summary['cost_over_warm_pass_cpu'])}
    for run in rounds:
        for side in ('plain', 'evaluating'):
            del run[side]['train_dir']
    return {'settings': {name: value for name, value in vars(args).items()
                         if name not in ('output', 'work_dir')},
            'summary': summary, 'rounds': rounds}


def _within_goal(ratio: float) -> bool | None:
    """Whether the cost is within the goal; None where it came out negative: the run with
    evaluations took less time than the one without, the machine's noise larger than it."""
    return None if ratio < 0 else ratio <= GOAL


def print_report(report: dict) -> None:
    summary, settings = report['summary'], report['settings']
    print('\nLeNet on digits, %d steps of batch %d, evaluation every %d steps (%d evaluations '
          'of %d images); medians of %d rounds' % (
              settings['steps'], settings['batch_size'], settings['eval_every'],
              summary['evaluations'], summary['examples'], settings['rounds']))
    common.print_table(['measurement', 'wall', 'CPU'], [
        [label, summary[key + 'seconds'] * scale, summary[key + 'cpu_seconds'] * scale]
        for label, key, scale in (
            ('training run without evaluation, s', 'plain_', 1),
            ('training run with evaluations, s', 'evaluating_', 1),
            ('cost of one in-training evaluation, ms', 'cost_per_evaluation_', 1000),
            ('standalone pass, warm (restore included), ms', 'standalone_warm_', 1000),
            ('standalone pass, cold (evaluate(config)), ms', 'standalone_cold_', 1000))] + [
        ['cost / warm pass', summary['cost_over_warm_pass'],
         summary['cost_over_warm_pass_cpu']],
        ['cost / cold pass', summary['cost_over_cold_pass'],
         summary['cost_over_cold_pass_cpu']]])
    print('Training images/sec without / with evaluations: %.0f / %.0f' % (
        summary['plain_images_per_sec'], summary['evaluating_images_per_sec']))
    print('\nPer in-training evaluation, median ms (beyond the run without evaluation)')
    common.print_table(['part', 'wall ms', 'CPU ms'], [
        [label, 1000 * summary['cost_parts_seconds'][label],
         1000 * summary['cost_parts_cpu_seconds'][label]] for label in PROFILED])
    goal = summary['goal']
    print('Goal: an evaluation every N steps costs <= %.1fx the warm pass: %.2fx wall (%s), '
          '%.2fx CPU (%s)' % (goal['target'], goal['ratio'], _met(goal['met']),
                              goal['cpu_ratio'], _met(goal['cpu_met'])))


def _met(met: bool | None) -> str:
    if met is None:
        return 'below the noise: more rounds or steps'
    return 'met' if met else 'NOT met'


@contextlib.contextmanager
def _quiet(*logger_names: str):
    """The trainer's and evaluator's info lines left out while the runs are timed."""
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _log(message: str) -> None:
    print('[%s] %s' % (time.strftime('%H:%M:%S'), message), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset_dir', default=None,
                        help='converted digits records; converted into the work directory if '
                             'unset')
    parser.add_argument('--steps', type=int, default=400, help='training steps of each run')
    parser.add_argument('--eval_every', type=int, default=100,
                        help='--eval_every_n_steps of the evaluating run')
    parser.add_argument('--batch_size', type=int, default=32)
    parser.add_argument('--rounds', type=int, default=3,
                        help='pairs of runs (without, with evaluation), alternating order')
    parser.add_argument('--passes', type=int, default=3,
                        help='warm standalone passes per round; the median is kept')
    parser.add_argument('--output', default=DEFAULT_OUTPUT, help='where the JSON report goes')
    parser.add_argument('--work_dir', default=None,
                        help='where records and runs go; a temporary directory if unset')
    args = parser.parse_args(argv)
    for name in ('steps', 'eval_every', 'batch_size', 'rounds', 'passes'):
        if getattr(args, name) < 1:
            parser.error('--%s must be >= 1; got %d' % (name, getattr(args, name)))
    if args.eval_every > args.steps:
        parser.error('--eval_every must be at most --steps (%d); got %d'
                     % (args.steps, args.eval_every))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started, load_at_start = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory() as temporary, _quiet('train', 'eval'):
        work_dir = args.work_dir or temporary
        os.makedirs(work_dir, exist_ok=True)
        if args.dataset_dir is None:
            args.dataset_dir = common.convert_digits(os.path.join(work_dir, 'digits'))
        report = measure(args, work_dir)
    print_report(report)
    return common.finish_report(report, args.output, started, load_at_start)


if __name__ == '__main__':
    main()
