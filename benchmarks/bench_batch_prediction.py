"""Batch prediction: decoding beside the model against decoding in the model's thread.

predict_image_classifier.py reads each batch of image files a batch ahead in
a thread of its own. A TFLite or ONNX model decodes and preprocesses in a
TensorFlow session in front of the model (`LoadedModel.prepare`), which that
reading thread now also runs, so that the model's thread only runs the model
(`infer`). This compares, side by side in one process, the command's library
(`prediction.write_rows`: files -> CSV) with the model as loaded ("beside")
and with the same model made whole again, decoding in the model's thread as
before ("in the model's thread"), alternating round by round; and both
against the model's raw rate, `predict_batch` on the same bytes in memory
(steady, after warm-up calls). Medians of `--rounds`.

The model is the digits LeNet of bench_deploy.py (trained for
`--train_steps`), exported as TFLite float, TFLite int8 and ONNX; the images
are the digits test split written as PNG files, `--copies` times over, so a
round lasts long enough to time. Models load as the command loads them
(`classifier.load_model`: one TFLite interpreter thread). The two modes write
the same bytes; the benchmark checks it.

    python benchmarks/bench_batch_prediction.py          # about a minute on 2 cores
    python benchmarks/bench_batch_prediction.py --batch_sizes 8 32 128 --rounds 9
"""

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import time

import common  # before the project's imports: it puts the repository on sys.path
import bench_deploy
from slim_classifier.serving import classifier, prediction
from slim_classifier.serving.image_sources import file_source
from slim_classifier.serving.prediction_files import RowLayout

DEFAULT_OUTPUT = os.path.join(bench_deploy.BENCHMARKS, 'results', 'bench_batch_prediction.json')
# The exports compared: those whose decoding runs apart from the model.
KINDS = ('TFLite float', 'TFLite int8', 'ONNX Runtime')
BESIDE, IN_MODEL_THREAD = 'beside', "in the model's thread"
TOP_K = 3


def whole(model: classifier.LoadedModel) -> classifier.LoadedModel:
    """`model` decoding in the caller's thread: predict_batch only, as before the split."""
    return dataclasses.replace(model, prepare=None, infer=None)


def write_seconds(model: classifier.LoadedModel, image_dir: str, output: str, batch_size: int,
                  class_names: list[str]) -> float:
    """Seconds of `prediction.write_rows` over the files of `image_dir` into `output`."""
    source = file_source(image_dir)
    layout = RowLayout(source.from_records, 'predictions', min(TOP_K, model.output_size),
                       model.output_size, class_names, model.thresholds)
    start = time.perf_counter()
    rows, rejected = prediction.write_rows(model, source, layout, output, batch_size,
                                           prediction.Progress(source.total))
    seconds = time.perf_counter() - start
    if rejected or rows != source.total:
        raise RuntimeError('%d of %d images rejected, %d rows written'
                           % (rejected, source.total, rows))
    return seconds


def raw_seconds(model: classifier.LoadedModel, encoded: list[bytes], batch_size: int) -> float:
    """Seconds of `predict_batch` over `encoded` in batches, after a few warm-up calls."""
    for _ in range(3):
        model.predict_batch(encoded[:batch_size])
    start = time.perf_counter()
    for begin in range(0, len(encoded), batch_size):
        model.predict_batch(encoded[begin:begin + batch_size])
    return time.perf_counter() - start


def side_by_side(model: classifier.LoadedModel, image_dir: str, work_dir: str, batch_size: int,
                 rounds: int, class_names: list[str]) -> dict[str, float]:
    """Images/sec of write_rows with decoding beside the model and in its thread, and of
    raw predict_batch (medians of `rounds`, alternating); raises if the two modes' files
    differ."""
    encoded = [item.encoded for item in file_source(image_dir).items()]
    models = {BESIDE: model, IN_MODEL_THREAD: whole(model)}
    outputs = {mode: os.path.join(work_dir, 'rows_%d.csv' % index)
               for index, mode in enumerate(models)}
    seconds = {mode: [] for mode in (*models, 'raw')}
    for _ in range(rounds):
        for mode, each in models.items():
            seconds[mode].append(write_seconds(each, image_dir, outputs[mode], batch_size,
                                               class_names))
        seconds['raw'].append(raw_seconds(model, encoded, batch_size))
    texts = set()
    for path in outputs.values():
        with open(path, encoding='utf-8') as rows:
            texts.add(rows.read())
    if len(texts) != 1:
        raise RuntimeError('the two modes wrote different rows')
    return {mode: len(encoded) / statistics.median(values) for mode, values in seconds.items()}


def copy_images(source_dir: str, image_dir: str, copies: int) -> int:
    """Writes `copies` copies of every file of `source_dir` into `image_dir`; their count."""
    os.makedirs(image_dir)
    names = sorted(os.listdir(source_dir))
    for copy in range(copies):
        for name in names:
            shutil.copyfile(os.path.join(source_dir, name),
                            os.path.join(image_dir, '%02d_%s' % (copy, name)))
    return copies * len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[8, 32])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--copies', type=int, default=8,
                        help='copies of the 359 digits test images predicted per round')
    parser.add_argument('--train_steps', type=int, default=300)
    parser.add_argument('--output', default=DEFAULT_OUTPUT, help='where the JSON report goes')
    parser.add_argument('--work_dir', default=None,
                        help='keep the records, exports and images in a new directory here; by '
                             'default they go to a temporary one, removed at the end')
    args = parser.parse_args()
    started, load_at_start = time.time(), os.getloadavg()
    rows = []
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = tempfile.mkdtemp(prefix='bench_batch_prediction_',
                                    dir=args.work_dir or temporary)
        net = bench_deploy.lenet_data(work_dir, args.train_steps)
        export_dir = os.path.join(work_dir, 'exports')
        os.makedirs(export_dir)
        paths, _ = bench_deploy.export_all(
            net, export_dir, bench_deploy.Failures(),
            kinds=tuple(kind for kind in bench_deploy.EXPORT_KINDS if kind.label in KINDS))
        image_dir = os.path.join(work_dir, 'images')
        count = copy_images(net.image_dir, image_dir, args.copies)
        print('%d image files; %s' % (count, ', '.join(sorted(paths))), flush=True)
        for kind in KINDS:
            if kind not in paths:
                print('%s did not export; left out' % kind)
                continue
            model = classifier.load_model(paths[kind], net.name)
            try:
                for batch_size in args.batch_sizes:
                    rates = side_by_side(model, image_dir, work_dir, batch_size, args.rounds,
                                         net.class_names)
                    rows.append({'kind': kind, 'batch': batch_size, 'images': count, **rates})
                    print('%s, batch %d: %s' % (kind, batch_size, ', '.join(
                        '%s %.0f/s' % item for item in rates.items())), flush=True)
            finally:
                model.close()
    common.print_table(
        ['kind', 'batch', "in the model's thread", 'beside', 'beside / in thread',
         'raw predict_batch', 'in thread / raw', 'beside / raw'],
        [[row['kind'], row['batch'], row[IN_MODEL_THREAD], row[BESIDE],
          '%.2fx' % (row[BESIDE] / row[IN_MODEL_THREAD]), row['raw'],
          '%.2fx' % (row[IN_MODEL_THREAD] / row['raw']), '%.2fx' % (row[BESIDE] / row['raw'])]
         for row in rows])
    common.finish_report({'rows': rows, 'settings': {
        name: value for name, value in vars(args).items() if name not in ('output', 'work_dir')}},
        args.output, started, load_at_start)


if __name__ == '__main__':
    main()
