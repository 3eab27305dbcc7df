"""Start-up time: from the command to the first training step and the first evaluated batch,
against Keras 3 building and compiling the same net.

Our side is the real commands, each a fresh process: train_image_classifier.py
fine-tuning from a checkpoint in the published format (exactly the variables
of the net's public checkpoint, tests/zoo/<net>.json, with random values), and
eval_image_classifier.py evaluating that checkpoint, both on a few JPEG records
of real photos at the net's size. The Keras side is a fresh process too: it
imports Keras, reads the same records, builds the keras.applications net,
loads its weights from a file saved beforehand, compiles and runs its first
`train_on_batch` (or first `predict_on_batch`). The clock of both starts when
the parent starts the process, so the interpreter's start-up counts on both.

Keras has no Inception-v4: inception_v4 is compared with Keras's
InceptionResNetV2, the closest (the same paper and the same stem; 56 M
parameters and 13.2 G multiply-adds against Inception-v4's 43 M and 12.3 G).
nasnet_large is compared with NASNetLarge and resnet_v1_152 with ResNet152.

Where the time goes: our commands log the end of the restore and the first
step or batch, which the parent times as the lines arrive; one more fresh
process of ours repeats the trainer's start-up through the same library calls
with a clock between the parts (imports, graph construction, session, variable
initialisation, restore, first and second step; `--eval_phases` does the same
for the evaluator), and `--profile` adds the cProfile of the training graph's
construction. The Keras process times its own parts.

Sides alternate within a round; the table gives each measurement's median
over the rounds and the load average around the run.

    python benchmarks/bench_startup.py                               # the three nets, 3 rounds
    python benchmarks/bench_startup.py --nets resnet_v1_152 --rounds 1 --profile
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import common  # before the project's imports: it puts the repository on sys.path

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCHMARKS)
NETS = ('inception_v4', 'nasnet_large', 'resnet_v1_152')
# The Keras application each of our nets is compared with (Keras has no Inception-v4).
KERAS_CLOSEST = {'inception_v4': 'InceptionResNetV2', 'nasnet_large': 'NASNetLarge',
                 'resnet_v1_152': 'ResNet152', 'lenet': 'lenet'}
NUM_RECORDS = 4
BATCH_SIZE = 2
# Settings shared by both sides; SGD with momentum as keras_jobs.py.
LEARNING_RATE = 1e-4
MOMENTUM = 0.9
# What our commands log at the end of each part of their start-up.
TRAIN_EVENTS = {'restored': 'Fine-tuning from ', 'first_step': 'step 1:'}
EVAL_EVENTS = {'restored': 'Evaluating ', 'first_batch': 'batch 1/'}


def _now() -> float:
    return time.time()


# ---------------------------------------------------------------- data and checkpoints


def write_records(directory: str, image_size: int, channels: int, num_classes: int,
                  count: int = NUM_RECORDS) -> None:
    """`count` JPEG records of sklearn's sample photos at image_size x image_size, in grey
    for a one-channel net.

    The dataset declares `num_classes` classes (the published checkpoint's), so
    that the whole checkpoint, logits included, fits it.
    """
    import tensorflow.compat.v1 as tf
    from PIL import Image
    from sklearn.datasets import load_sample_images
    os.makedirs(directory, exist_ok=True)
    photos = load_sample_images().images
    with tf.io.TFRecordWriter(os.path.join(directory, 'startup_train_00000-of-00001.tfrecord')
                              ) as writer:
        for index in range(count):
            picture = Image.fromarray(photos[index % len(photos)]).resize(
                (image_size, image_size))
            if channels == 1:
                picture = picture.convert('L')
            encoded = io.BytesIO()
            picture.save(encoded, format='JPEG', quality=90)
            feature = {
                'image/encoded': _bytes(encoded.getvalue()),
                'image/format': _bytes(b'jpeg'),
                'image/class/label': tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[index % num_classes])),
                'image/height': tf.train.Feature(int64_list=tf.train.Int64List(value=[image_size])),
                'image/width': tf.train.Feature(int64_list=tf.train.Int64List(value=[image_size])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    info = {'format_version': 1, 'name': 'startup', 'num_classes': num_classes,
            'classes': ['class_%d' % label for label in range(num_classes)],
            'splits': {'train': count}, 'file_pattern': 'startup_%s_*.tfrecord',
            'image_format': 'jpeg'}
    with open(os.path.join(directory, 'dataset_info.json'), 'w') as info_file:
        json.dump(info, info_file)


def _bytes(value: bytes):
    import tensorflow.compat.v1 as tf
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def write_published_checkpoint(model_name: str, prefix: str) -> str:
    """A checkpoint holding exactly the public checkpoint's variables, random values."""
    from tests import zoo_facts
    return zoo_facts.write_published_checkpoint(model_name, prefix)


def published_num_classes(model_name: str) -> int:
    from tests import zoo_facts
    return zoo_facts.load(model_name)['num_classes']


def net_input(model_name: str) -> tuple[int, int]:
    """(image size, channels) of the net's default input."""
    from nets import nets_factory
    spec = nets_factory.get_network_spec(model_name)
    return spec.default_image_size, spec.num_channels


# ---------------------------------------------------------------- the Keras side (a child)


def keras_model(model_name: str, size: int, classes: int):
    import keras
    if model_name == 'lenet':
        from bench_nets import keras_lenet
        return keras_lenet((size, size, 1), classes)
    application = getattr(keras.applications, KERAS_CLOSEST[model_name])
    return application(weights=None, input_shape=(size, size, 3), classes=classes,
                       classifier_activation=None)


def keras_batch(dataset_dir: str, size: int, channels: int, batch_size: int):
    """The first `batch_size` records, decoded and scaled to [-1, 1] as our preprocessing does."""
    import tensorflow as tf
    pattern = os.path.join(dataset_dir, '*.tfrecord')
    features = {'image/encoded': tf.io.FixedLenFeature([], tf.string),
                'image/class/label': tf.io.FixedLenFeature([], tf.int64)}

    def decode(record):
        parsed = tf.io.parse_single_example(record, features)
        image = tf.image.decode_jpeg(parsed['image/encoded'], channels=channels)
        image = tf.image.resize(tf.image.convert_image_dtype(image, tf.float32), [size, size])
        return image * 2.0 - 1.0, parsed['image/class/label']

    records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)).map(decode)
    return next(iter(records.batch(batch_size).take(1)))


def prepare_child(args: argparse.Namespace) -> dict:
    """Writes the records and our published-format checkpoint."""
    _, channels = net_input(args.model_name)
    write_records(args.dataset_dir, args.image_size, channels, args.num_classes)
    return {'checkpoint': write_published_checkpoint(args.model_name, args.checkpoint)}


def keras_child(args: argparse.Namespace) -> dict:
    """One Keras start-up: the time.time() at the end of each part, and the steady step."""
    marks = {}
    import keras  # imports TensorFlow too
    marks['import'] = _now()
    size, classes = args.image_size, args.num_classes
    channels = 1 if args.model_name == 'lenet' else 3
    images, labels = keras_batch(args.dataset_dir, size, channels, args.batch_size)
    marks['data'] = _now()
    model = keras_model(args.model_name, size, classes)
    marks['build'] = _now()
    if args.save_weights:
        model.save_weights(args.weights)
        return {'saved': args.weights}
    model.load_weights(args.weights)
    marks['restored'] = _now()
    if args.mode == 'train':
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        marks['compile'] = _now()
        model.train_on_batch(images, labels)
        marks['first_step'] = _now()
        model.train_on_batch(images, labels)
        marks['second_step'] = _now()
    else:
        model.predict_on_batch(images)
        marks['first_batch'] = _now()
        model.predict_on_batch(images)
        marks['second_batch'] = _now()
    return {'marks': marks, 'keras_version': keras.__version__}


# ---------------------------------------------------------------- our parts (a child)


def ours_phases_child(args: argparse.Namespace) -> dict:
    """Our trainer's or evaluator's start-up in one process, a clock between its parts.

    The parts are those of trainer._train and chief_session for a new
    train_dir with --checkpoint_path (and of Evaluator for --mode=eval),
    called through the same library functions.
    """
    marks = {}
    from slim_classifier.cli import runner
    runner.import_tensorflow_silently()  # as the commands import it: without Keras
    import tensorflow.compat.v1 as tf
    marks['import_tensorflow'] = _now()
    from slim_classifier.runtime import checkpoints, session_config
    from slim_classifier.training import graph as training_graph
    from slim_classifier.training import trainer
    from slim_classifier.training.config import TrainConfig
    marks['import_project'] = _now()
    del trainer  # imported as the command imports it
    profile = cProfile.Profile() if args.profile else None
    graph = tf.Graph()
    with graph.as_default():
        if profile:
            profile.enable()
        if args.mode == 'train':
            os.makedirs(args.train_dir, exist_ok=True)
            config = TrainConfig(**_ours_train_options(args))
            model = training_graph.build_training_graph(config, is_chief=True)
            tf.train.Saver(max_to_keep=config.max_to_keep)  # the trainer's, part of its graph
            fetches = [model.train_op, model.step_after_train, model.learning_rate]
        else:
            from datasets import dataset_factory, input_pipeline
            from nets import nets_factory
            from slim_classifier.runtime.batches import evaluation_batches
            dataset = dataset_factory.get_dataset('startup', 'train', args.dataset_dir)
            network_fn = nets_factory.get_network_fn(args.model_name, dataset.num_classes)
            batches = evaluation_batches(dataset, args.model_name, args.image_size,
                                         args.batch_size)
            images, labels, initializer = input_pipeline.initializable_batch(batches)
            logits, _ = network_fn(images)
            fetches = [tf.nn.softmax(logits), tf.nn.in_top_k(logits, labels, 5)]
            restorer = checkpoints.CheckpointRestorer(args.model_name, dataset.num_classes)
        if profile:
            profile.disable()
        graph.finalize()
    marks['graph'] = _now()
    with graph.as_default():
        session = tf.Session(graph=graph, config=session_config.make_session_config())
        marks['session'] = _now()
        if args.mode == 'train':
            # As the trainer: the variables not restored are initialised, then the rest restored.
            model.fine_tune.initialize_and_restore(session)
            marks['restored'] = _now()
            # The trainer writes summaries at its first step.
            session.run(fetches + [model.summary_op])
            marks['first_step'] = _now()
            session.run(fetches)
            marks['second_step'] = _now()
        else:
            restorer.restore(session, args.checkpoint)
            marks['restored'] = _now()
            session.run(initializer)
            session.run(fetches)
            marks['first_batch'] = _now()
    result = {'marks': marks, 'graph_ops': len(graph.get_operations())}
    if profile:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats('cumulative').print_stats(40)
        result['profile'] = text.getvalue()
    return result


def _ours_train_options(args: argparse.Namespace) -> dict:
    return {'model_name': args.model_name, 'dataset_name': 'startup',
            'dataset_dir': args.dataset_dir, 'dataset_split_name': 'train',
            'train_dir': args.train_dir, 'checkpoint_path': args.checkpoint,
            'batch_size': args.batch_size, 'max_number_of_steps': 2, 'log_every_n_steps': 1,
            'optimizer': 'momentum', 'momentum': MOMENTUM, 'learning_rate': LEARNING_RATE,
            'learning_rate_decay_type': 'fixed', 'weight_decay': 0.0,
            'save_interval_secs': 86400, 'save_summaries_secs': 86400}


def _flags(options: dict) -> list[str]:
    return ['--%s=%s' % (name, value) for name, value in options.items()]


# ---------------------------------------------------------------- the parent


def _child_env() -> dict:
    return {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'PYTHONUNBUFFERED': '1'}


def run_and_watch(command: list[str], events: dict[str, str], stop_after: str | None
                  ) -> dict:
    """Runs a child, timing the first output line holding each event's text.

    Returns the seconds from the start to each event (and to 'exit' unless it
    is stopped with SIGKILL once `stop_after` is seen: what a command does
    after it, writing checkpoints or reports, is not start-up) and the output.
    """
    start = _now()
    process = subprocess.Popen(command, cwd=REPO, env=_child_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen, lines = {}, []
    for line in process.stdout:
        lines.append(line)
        for name, text in events.items():
            if name not in seen and text in line:
                seen[name] = _now() - start
        if stop_after is not None and stop_after in seen:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    if stop_after is None:
        seen['exit'] = _now() - start
    missing = [name for name in events if name not in seen]
    if missing or (stop_after is None and process.returncode != 0):
        raise RuntimeError('%s: no %s (exit %s):\n%s' % (
            ' '.join(command[1:3]), ', '.join(missing) or 'error', process.returncode,
            ''.join(lines[-30:])))
    return {'seconds': seen, 'output': lines}


def run_child_json(arguments: list[str]) -> dict:
    """Runs this script as a child; returns its JSON line, marks made relative to its start."""
    start = _now()
    result = subprocess.run([sys.executable, os.path.abspath(__file__), *arguments], cwd=REPO,
                            env=_child_env(), text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError('child %s failed:\n%s' % (' '.join(arguments[:3]),
                                                     result.stderr[-3000:]))
    report = json.loads([line for line in result.stdout.splitlines()
                         if line.startswith('{')][-1])
    if 'marks' in report:
        report['seconds'] = {name: mark - start for name, mark in report['marks'].items()}
    return report


def ours_train(model_name: str, data: dict, train_dir: str) -> dict:
    options = _ours_train_options(argparse.Namespace(
        model_name=model_name, dataset_dir=data['dataset_dir'], train_dir=train_dir,
        checkpoint=data['checkpoint'], batch_size=BATCH_SIZE))
    command = [sys.executable, os.path.join(REPO, 'train_image_classifier.py'),
               *_flags(options)]
    return run_and_watch(command, TRAIN_EVENTS, stop_after='first_step')['seconds']


def ours_eval(model_name: str, data: dict, eval_dir: str) -> dict:
    options = {'model_name': model_name, 'dataset_name': 'startup',
               'dataset_dir': data['dataset_dir'], 'dataset_split_name': 'train',
               'checkpoint_path': data['checkpoint'], 'eval_dir': eval_dir,
               'batch_size': BATCH_SIZE, 'max_num_batches': 1}
    command = [sys.executable, os.path.join(REPO, 'eval_image_classifier.py'),
               *_flags(options)]
    return run_and_watch(command, EVAL_EVENTS, stop_after='first_batch')['seconds']


def _child_arguments(model_name: str, data: dict, mode: str) -> list[str]:
    return ['--child=' + mode, '--model_name=' + model_name,
            '--dataset_dir=' + data['dataset_dir'], '--checkpoint=' + data['checkpoint'],
            '--weights=' + data['weights'], '--image_size=%d' % data['image_size'],
            '--num_classes=%d' % data['num_classes'], '--batch_size=%d' % BATCH_SIZE]


def keras_side(model_name: str, data: dict, mode: str) -> dict:
    return run_child_json(_child_arguments(model_name, data, 'keras') + ['--mode=' + mode])


def ours_phases(model_name: str, data: dict, mode: str, train_dir: str, profile: bool) -> dict:
    arguments = _child_arguments(model_name, data, 'ours') + [
        '--mode=' + mode, '--train_dir=' + train_dir]
    return run_child_json(arguments + (['--profile'] if profile else []))


def prepare(model_name: str, work_dir: str) -> dict:
    """Records, our published-format checkpoint and Keras's weights file for one net."""
    size, classes = net_input(model_name)[0], published_num_classes(model_name)
    data = {'dataset_dir': os.path.join(work_dir, 'records'), 'image_size': size,
            'num_classes': classes, 'weights': os.path.join(work_dir, 'keras.weights.h5')}
    data['checkpoint'] = os.path.join(work_dir, 'model.ckpt')
    # In a child: the checkpoint's graph holds every value, which the parent need not keep.
    run_child_json(_child_arguments(model_name, data, 'prepare'))
    run_child_json(_child_arguments(model_name, data, 'keras') + ['--save_weights'])
    return data


def measure_net(model_name: str, rounds: int, work_dir: str, profile: bool,
                phase_modes: tuple[str, ...] = ('train', 'eval')) -> dict:
    """Every start-up of both sides, `rounds` times, alternating which side goes first."""
    data = prepare(model_name, work_dir)
    runs = {key: [] for key in ('ours_train', 'keras_train', 'ours_eval', 'keras_eval')}
    runs.update({'ours_%s_phases' % mode: [] for mode in phase_modes})
    loads = [os.getloadavg()]
    for round_index in range(rounds):
        directory = os.path.join(work_dir, 'round_%d' % round_index)
        jobs = [('ours_train', lambda: ours_train(model_name, data, directory + '_train')),
                ('keras_train', lambda: keras_side(model_name, data, 'train')['seconds']),
                ('ours_eval', lambda: ours_eval(model_name, data, directory + '_eval')),
                ('keras_eval', lambda: keras_side(model_name, data, 'eval')['seconds'])]
        if round_index % 2:
            jobs = [jobs[1], jobs[0], jobs[3], jobs[2]]
        for key, job in jobs:
            runs[key].append(job())
            _log('%s round %d %s: %s' % (model_name, round_index, key, _brief(runs[key][-1])))
        loads.append(os.getloadavg())
    for mode in phase_modes:
        phases = ours_phases(model_name, data, mode, os.path.join(work_dir, 'phases_' + mode),
                             profile=False)
        runs['ours_%s_phases' % mode].append(phases['seconds'])
        _log('%s phases %s (%s ops): %s' % (model_name, mode, phases['graph_ops'],
                                            _brief(phases['seconds'])))
    loads.append(os.getloadavg())
    if profile:  # a run of its own: the profiler slows what it watches
        print(ours_phases(model_name, data, 'train', os.path.join(work_dir, 'profiled'),
                          profile=True)['profile'], flush=True)
    return {'runs': runs, 'load_averages': loads, 'keras_model': KERAS_CLOSEST[model_name]}


def medians(runs: list[dict]) -> dict:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def parts(seconds: dict) -> list[tuple[str, float]]:
    """The marks as durations of consecutive parts, in the order they happened."""
    ordered = sorted(seconds.items(), key=lambda item: item[1])
    previous, result = 0.0, []
    for name, at in ordered:
        result.append((name, at - previous))
        previous = at
    return result


def rows_of(model_name: str, result: dict) -> list[list[object]]:
    runs = result['runs']
    rows = []
    for mode, goal_mark in (('train', 'first_step'), ('eval', 'first_batch')):
        ours = medians(runs['ours_' + mode])
        keras = medians(runs['keras_' + mode])
        rows.append([model_name, result['keras_model'], mode, ours[goal_mark],
                     keras[goal_mark], ours[goal_mark] / keras[goal_mark],
                     'yes' if ours[goal_mark] <= keras[goal_mark] else 'NO'])
    return rows


def print_parts(model_name: str, result: dict) -> None:
    runs = result['runs']
    for key in ('ours_train', 'ours_train_phases', 'keras_train', 'ours_eval',
                'ours_eval_phases', 'keras_eval'):
        if not runs.get(key):
            continue
        described = ', '.join('%s %.1f' % part for part in parts(medians(runs[key])))
        print('%s %s: %s' % (model_name, key, described))


def _brief(seconds: dict) -> str:
    return ', '.join('%s %.1f s' % item for item in sorted(seconds.items(),
                                                          key=lambda item: item[1]))


def _log(message: str) -> None:
    print('[%s] %s' % (time.strftime('%H:%M:%S'), message), flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', nargs='+', choices=sorted(KERAS_CLOSEST), default=list(NETS))
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--profile', action='store_true',
                        help="print the cProfile of our training graph's construction (a run "
                             'of its own, after the timed ones)')
    parser.add_argument('--output', default=None, help='where the JSON report goes, if set')
    parser.add_argument('--work_dir', default=None)
    # The children's settings.
    parser.add_argument('--eval_phases', action='store_true',
                        help="time our evaluator's parts in a process of their own too; the "
                             "command's own lines give its restore and first batch anyway")
    parser.add_argument('--child', choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument('--mode', choices=('train', 'eval'), default='train',
                        help=argparse.SUPPRESS)
    parser.add_argument('--save_weights', action='store_true', help=argparse.SUPPRESS)
    for name in ('model_name', 'dataset_dir', 'checkpoint', 'weights', 'train_dir'):
        parser.add_argument('--' + name, help=argparse.SUPPRESS)
    for name in ('image_size', 'num_classes', 'batch_size'):
        parser.add_argument('--' + name, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error('--rounds must be >= 1; got %d' % args.rounds)
    return args


def run(nets: list[str], rounds: int, work_dir: str, profile: bool,
        phase_modes: tuple[str, ...]) -> dict:
    report = {'started': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
              'load_average_at_start': os.getloadavg(), 'nets': {}}
    for model_name in nets:
        net_dir = os.path.join(work_dir, model_name)
        os.makedirs(net_dir, exist_ok=True)
        report['nets'][model_name] = measure_net(model_name, rounds, net_dir, profile,
                                                 phase_modes)
    report['load_average_at_end'] = os.getloadavg()
    return report


def print_report(report: dict) -> None:
    rows = []
    for model_name, result in report['nets'].items():
        rows += rows_of(model_name, result)
    common.print_table(['net', 'keras model', 'to first', 'ours s', 'keras s', 'ratio',
                        'not slower'], rows)
    for model_name, result in report['nets'].items():
        print_parts(model_name, result)
    print('started %s; load average %s at the start, %s at the end' % (
        report['started'],
        '/'.join('%.1f' % load for load in report['load_average_at_start']),
        '/'.join('%.1f' % load for load in report['load_average_at_end'])))


CHILDREN = {'prepare': prepare_child, 'keras': keras_child, 'ours': ours_phases_child}


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)), flush=True)
        return
    phase_modes = ('train', 'eval') if args.eval_phases else ('train',)
    with tempfile.TemporaryDirectory() as temporary:
        report = run(args.nets, args.rounds, args.work_dir or temporary, args.profile,
                     phase_modes)
    print_report(report)
    if args.output:
        with open(args.output, 'w') as output:
            json.dump(report, output, indent=1)


if __name__ == '__main__':
    main()
