"""Where our MobileNetV2 training step spends its time: depthwise convolutions, Conv2D, the rest.

The step is the trainer's own (`build_training_graph`: records, tf.data
pipeline, net, losses, momentum update), on run_all.py's photo records and
batch, in each precision with the trainer's session settings (`--precision=bf16`
is the oneDNN bfloat16 rewrite). After a few untimed steps, a few steps run
with a full trace (RunOptions FULL_TRACE): their RunMetadata step stats give
the time of every kernel, and their partition graphs give the op that each
kernel ran after the graph rewrites (oneDNN's _MklNative* ops, remapper
fusions, bfloat16 casts) with its dtype. Kernels fall in three groups:

* depthwise: DepthwiseConv2dNative and its backprops (input and filter);
* conv2d: Conv2D, fused or not, and its backprops;
* rest: batch norm, ReLU6, casts, the optimizer, the input pipeline's ops.

Shares are of the summed kernel time: two kernels that run at once both
count, so the sum can exceed the step's wall-clock time. The first table
gives the shares; the second the op types, with kernels and milliseconds
per step (depthwise and conv2d all, the rest's largest).

    python benchmarks/bench_depthwise.py                          # about 2 minutes on 2 cores
    python benchmarks/bench_depthwise.py --precisions bf16 --traced_steps 2
"""

import argparse
import dataclasses
import os
import tempfile
import time

import common  # before the project's imports: it puts the repository on sys.path
import tensorflow.compat.v1 as tf

import bench_input_pipeline
import compute
import run_all
from slim_classifier.runtime import session_config
from slim_classifier.training import graph as training_graph
from slim_classifier.training.config import TrainConfig

GROUPS = ('depthwise', 'conv2d', 'rest')
# Op types of the rest group shown one by one in the detail table.
REST_OPS_SHOWN = 6


@dataclasses.dataclass
class OpTime:
    """The kernels of one op type (and dtype) over the traced steps."""
    group: str  # one of GROUPS
    kernels: int = 0
    micros: int = 0


@dataclasses.dataclass
class StepProfile:
    """One precision's training step: its wall-clock time and its kernels by op type."""
    precision: str
    steps: int  # traced steps
    step_ms: float  # mean wall-clock time of an untraced step
    ops: dict[tuple[str, str], OpTime]  # (op type, dtype) -> its kernels

    def group_micros(self, group: str) -> int:
        return sum(op.micros for op in self.ops.values() if op.group == group)

    @property
    def total_micros(self) -> int:
        return sum(op.micros for op in self.ops.values())


def op_group(op_type: str) -> str:
    """'depthwise', 'conv2d' or 'rest', by the name of the op that ran."""
    if 'DepthwiseConv2dNative' in op_type:
        return 'depthwise'
    if 'Conv2D' in op_type:
        return 'conv2d'
    return 'rest'


def training_config(model_name: str, precision: str, dataset_name: str, dataset_dir: str,
                    batch_size: int) -> TrainConfig:
    """The training run_all.py times (its train_image_classifier.py flags), as a config."""
    return TrainConfig(model_name=model_name, dataset_name=dataset_name,
                       dataset_dir=dataset_dir, batch_size=batch_size, precision=precision,
                       optimizer='momentum', momentum=run_all.MOMENTUM,
                       learning_rate=run_all.LEARNING_RATE, learning_rate_decay_type='fixed',
                       weight_decay=0.0, num_readers=run_all.NUM_READERS,
                       num_preprocessing_threads=run_all.NUM_PREPROCESSING_THREADS)


def profile_step(config: TrainConfig, warmup: int, timed_steps: int, traced_steps: int
                 ) -> StepProfile:
    """Times untraced steps, then sums the kernels of traced ones by op type and dtype."""
    with tf.Graph().as_default() as graph:
        model = training_graph.build_training_graph(config, is_chief=True)
    with tf.Session(graph=graph,
                    config=session_config.make_session_config(config.precision)) as session:
        session.run(model.init_op)
        for _ in range(warmup):
            session.run(model.train_op)
        start = time.perf_counter()
        for _ in range(timed_steps):
            session.run(model.train_op)
        step_ms = 1000.0 * (time.perf_counter() - start) / timed_steps
        options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE,
                                output_partition_graphs=True)
        ops = {}
        for _ in range(traced_steps):
            metadata = tf.RunMetadata()
            session.run(model.train_op, options=options, run_metadata=metadata)
            add_kernels(metadata, ops)
    return StepProfile(config.precision, traced_steps, step_ms, ops)


def add_kernels(metadata: tf.RunMetadata, ops: dict[tuple[str, str], OpTime]) -> None:
    """Adds each kernel of a traced step to `ops`, by the op and dtype its partition graph ran."""
    nodes = {node.name: node for partition in metadata.partition_graphs
             for node in partition.node}
    for device in metadata.step_stats.dev_stats:
        for stats in device.node_stats:
            node = nodes.get(stats.node_name)
            if node is None:  # _SOURCE and the like: not ops of the graph
                continue
            dtype_attr = next((name for name in ('T', 'DstT') if name in node.attr), None)
            dtype = tf.as_dtype(node.attr[dtype_attr].type).name if dtype_attr else '-'
            op = ops.setdefault((node.op, dtype), OpTime(op_group(node.op)))
            op.kernels += 1
            op.micros += stats.all_end_rel_micros


def share_rows(profiles: list[StepProfile]) -> list[list[object]]:
    rows = []
    for profile in profiles:
        total = profile.total_micros
        rows.append([profile.precision, profile.step_ms, total / 1000.0 / profile.steps]
                    + ['%.1f%%' % (100.0 * profile.group_micros(group) / total)
                       for group in GROUPS])
    return rows


def op_rows(profile: StepProfile) -> list[list[object]]:
    """Every depthwise and conv2d op type, then the largest of the rest, by group and time."""
    total, steps = profile.total_micros, profile.steps
    ranked = sorted(profile.ops.items(),
                    key=lambda item: (GROUPS.index(item[1].group), -item[1].micros))
    convolutions = [item for item in ranked if item[1].group != 'rest']
    rest = [item for item in ranked if item[1].group == 'rest']
    rows = [[profile.precision, op.group, op_type, dtype, op.kernels // steps,
             op.micros / 1000.0 / steps, '%.1f%%' % (100.0 * op.micros / total)]
            for (op_type, dtype), op in convolutions + rest[:REST_OPS_SHOWN]]
    others = rest[REST_OPS_SHOWN:]
    others_micros = sum(op.micros for _, op in others)
    rows.append([profile.precision, 'rest', '(%d other op types)' % len(others), '', '',
                 others_micros / 1000.0 / steps, '%.1f%%' % (100.0 * others_micros / total)])
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    plan = run_all.PLANS['mobilenet_v2']
    parser.add_argument('--model_name', default=plan.model_name,
                        choices=sorted(name for name, net_plan in run_all.PLANS.items()
                                       if net_plan.dataset_name == 'photos'),
                        help='nasnet_mobile has depthwise convolutions too')
    parser.add_argument('--batch_size', type=int, default=plan.batch_size,
                        help="run_all.py's mobilenet_v2 batch by default")
    parser.add_argument('--precisions', nargs='+', choices=list(compute.DTYPES),
                        default=list(compute.DTYPES))
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    parser.add_argument('--timed_steps', type=int, default=5,
                        help='untraced steps whose mean wall-clock time is printed')
    parser.add_argument('--traced_steps', type=int, default=3,
                        help='traced steps whose kernel times are summed')
    args = parser.parse_args()
    for name in ('batch_size', 'timed_steps', 'traced_steps'):
        if getattr(args, name) < 1:
            parser.error('--%s must be >= 1; got %d' % (name, getattr(args, name)))
    return args


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as dataset_dir:
        bench_input_pipeline.write_photo_records(dataset_dir, run_all.PHOTO_RECORDS,
                                                 run_all.PHOTO_SHARDS, seed=0)
        profiles = [profile_step(training_config(args.model_name, precision, 'photos',
                                                 dataset_dir, args.batch_size),
                                 args.warmup, args.timed_steps, args.traced_steps)
                    for precision in args.precisions]
    print('%s training step, batch %d, %d cores: kernel time by group (traced steps: %d)\n'
          % (args.model_name, args.batch_size, os.cpu_count(), args.traced_steps))
    common.print_table(['precision', 'step ms', 'kernel ms/step']
                       + ['%s share' % group for group in GROUPS], share_rows(profiles))
    print()
    common.print_table(['precision', 'group', 'op that ran', 'dtype', 'kernels/step',
                        'ms/step', 'share'],
                       [row for profile in profiles for row in op_rows(profile)])


if __name__ == '__main__':
    main()
