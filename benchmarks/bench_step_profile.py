"""Where each net's training step spends its time, against the bound of its convolution kernels.

The step is the trainer's own (`build_training_graph`: records, tf.data
pipeline, net with its auxiliary head, losses, momentum update), on
run_all.py's records and batch for each net, in each precision with the
trainer's session settings (`--precision=bf16` is the oneDNN bfloat16
rewrite). After a few untimed steps, a few are timed, then a few run with a
full trace (RunOptions FULL_TRACE): their RunMetadata step stats give the
time of every kernel, and their partition graphs give the op that each kernel
ran after the graph rewrites (oneDNN's _MklNative* ops, remapper fusions with
the ops they fused, bfloat16 casts) and its dtype. Kernels fall in groups:

* conv2d: Conv2D, fused or not, and its backprops;
* depthwise: DepthwiseConv2dNative and its backprops;
* matmul: the fully connected layers;
* batch_norm: fused batch norm and its gradient;
* activation: ReLU, ReLU6 and their gradients, where not fused into another op;
* optimizer: the variables' updates (ApplyMomentum, the global step's, batch
  norm's moving averages);
* reorder_copy: layout reorders, casts and copies (_MklToTf, Transpose, Cast,
  Identity, concat, split, slice, pad, reshape);
* input: the input pipeline's ops (IteratorGetNext waits for a batch);
* other: the rest (pooling, residual adds, bias gradients, the loss).

The bound is `bench_conv_kernels.py`'s: every convolution of the same
training graph (`graph_convolutions` of the train op: same shapes, classes
and auxiliary head) timed alone, forward and backward, in the same precision,
after the step's session is closed. "ours / bound" is the bound over the
step's wall-clock time; "convs / alone" is the step's convolution kernels
over the same kernels alone. "CPU ms" is the process's CPU time per step,
the input pipeline's threads included: steadier than wall-clock time on a
shared machine.

Kernel times are summed: two kernels that run at once both count, so the sum
can exceed the step's wall-clock time, and a kernel waiting for a core counts
its wait. Shares are of that sum. The last table gives the largest op types
of the groups named by --detail (by default all but the convolutions).

--settings runs the same profile under other TensorFlow settings, side by
side (see SETTINGS): thread pools, oneDNN's environment variables, the
remapper off. Settings of the environment run in a child process each, as
TensorFlow reads them when it loads.

    python benchmarks/bench_step_profile.py      # the five nets of issue 18: 10-15 min on 2 cores
    python benchmarks/bench_step_profile.py --nets resnet_v1_50 --precisions float32 \\
        --traced_steps 2 --settings trainer inter_op_1 onednn_off
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import common  # before the project's imports: it puts the repository on sys.path
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import rewriter_config_pb2

import bench_conv_kernels
import compute
import run_all
from slim_classifier.runtime import session_config
from slim_classifier.training import graph as training_graph
from slim_classifier.training.config import TrainConfig

# Each group with the parts of op type names that put a kernel in it, tried in
# order: the rewritten ops' names (_MklNativeFusedConv2D, _MklFusedBatchNormEx,
# ResourceApplyKerasMomentum) contain the plain ones.
GROUP_RULES = (
    ('depthwise', ('DepthwiseConv2dNative',)),
    ('conv2d', ('Conv2D',)),
    ('matmul', ('MatMul',)),
    ('batch_norm', ('FusedBatchNorm',)),
    ('activation', ('Relu', 'Elu', 'Sigmoid', 'Tanh')),
    ('optimizer', ('Apply', 'Assign')),
    ('reorder_copy', ('MklToTf', 'TfToMkl', 'InputConversion', 'Transpose', 'Cast', 'Identity',
                      'Snapshot', 'Concat', 'Split', 'Slice', 'Pad', 'Pack', 'Reshape', 'Tile',
                      'Copy')),
    ('input', ('Iterator', 'Dataset')),
)
GROUPS = tuple(group for group, _ in GROUP_RULES) + ('other',)
CONVOLUTION_GROUPS = ('conv2d', 'depthwise')
ISSUE_18_NETS = ('vgg_16', 'inception_v3', 'resnet_v1_50', 'mobilenet_v2', 'inception_resnet_v2')


@dataclasses.dataclass(frozen=True)
class Setting:
    """TensorFlow settings a profile runs under, besides the trainer's session config."""
    description: str
    environment: tuple[tuple[str, str], ...] = ()  # read by TensorFlow when it loads
    intra_op_threads: int = 0  # 0: the trainer's (one per core)
    inter_op_threads: int = 0
    rewrites_off: tuple[str, ...] = ()  # RewriterConfig fields turned off

    def in_effect(self) -> bool:
        """Whether this process runs under the setting's environment."""
        return all(os.environ.get(name) == value for name, value in self.environment)


SETTINGS = {
    'trainer': Setting("the trainer's: one thread per core in both pools, oneDNN on"),
    'inter_op_1': Setting('one op at a time, each on every core', inter_op_threads=1),
    'intra_op_1': Setting('each op on one core, ops side by side', intra_op_threads=1),
    'onednn_off': Setting("TensorFlow's Eigen kernels instead of oneDNN's",
                          environment=(('TF_ENABLE_ONEDNN_OPTS', '0'),)),
    'caller_thread': Setting("oneDNN's kernels also run on the thread that calls them",
                             environment=(('TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD', '1'),)),
    'system_allocator': Setting("oneDNN's scratch memory from malloc, not TensorFlow's pool",
                                environment=(('TF_ONEDNN_USE_SYSTEM_ALLOCATOR', '1'),)),
    'openmp_env': Setting('OpenMP settings (OMP_NUM_THREADS, KMP_*), which a TensorFlow built '
                          'on its own thread pool should ignore',
                          environment=(('OMP_NUM_THREADS', '1'), ('KMP_BLOCKTIME', '0'),
                                       ('KMP_AFFINITY', 'granularity=fine,compact,1,0'))),
    'no_remapper': Setting('no remapper: no fused convolution + bias + activation, batch norm '
                           '+ activation', rewrites_off=('remapping',)),
    # The trainer keeps batch norm in float32 under bf16 for the nets of
    # session_config.FLOAT32_BATCH_NORM_NETS only; these two decide for every net.
    'bn_float32': Setting('bf16 with batch norm and its gradient kept in float32 (off the '
                          "rewrite's infer list)", environment=((
                              session_config.INFERLIST_REMOVE,
                              ','.join(session_config.BATCH_NORM_OPS)),)),
    'bn_bf16': Setting('bf16 with batch norm in bfloat16 after a bfloat16 convolution (the '
                       "rewrite's own lists)",
                       environment=((session_config.INFERLIST_REMOVE, ''),)),
}


@dataclasses.dataclass
class OpTime:
    """The kernels of one op (type, fused ops, dtype) over the traced steps."""
    group: str  # one of GROUPS
    kernels: int = 0
    micros: int = 0


@dataclasses.dataclass
class StepProfile:
    """One net's training step in one precision and setting: its time, kernels and bound."""
    model_name: str
    precision: str
    setting: str  # a key of SETTINGS
    batch_size: int
    steps: int  # traced steps
    step_ms: float  # mean wall-clock time of an untraced step
    step_cpu_ms: float  # this process's CPU time (all threads) per untraced step
    ops: dict[tuple[str, str], OpTime]  # (op that ran, dtype) -> its kernels
    convolutions: int = 0  # in the training graph
    bound_ms: float | None = None  # those convolutions' kernels alone

    def group_ms(self, group: str) -> float:
        """Kernel milliseconds of a group per step."""
        return sum(op.micros for op in self.ops.values() if op.group == group) / 1000.0 / self.steps

    @property
    def kernel_ms(self) -> float:
        return sum(op.micros for op in self.ops.values()) / 1000.0 / self.steps

    def share(self, group: str) -> float:
        return self.group_ms(group) / self.kernel_ms

    @property
    def largest_other_group(self) -> str:
        """The non-convolution group with the most kernel time."""
        return max((group for group in GROUPS if group not in CONVOLUTION_GROUPS),
                   key=self.group_ms)

    def report(self) -> dict:
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        fields['ops'] = [{'op': op, 'dtype': dtype, **dataclasses.asdict(times)}
                         for (op, dtype), times in self.ops.items()]
        fields['group_ms'] = {group: self.group_ms(group) for group in GROUPS}
        return fields

    @classmethod
    def from_report(cls, report: dict) -> 'StepProfile':
        fields = {field.name: report[field.name] for field in dataclasses.fields(cls)}
        fields['ops'] = {(op['op'], op['dtype']): OpTime(op['group'], op['kernels'],
                                                         op['micros'])
                         for op in report['ops']}
        return cls(**fields)


def op_group(op_type: str) -> str:
    """The group of GROUPS of a kernel, by the type of the op that ran."""
    for group, parts in GROUP_RULES:
        if any(part in op_type for part in parts):
            return group
    return 'other'


def training_config(model_name: str, precision: str, dataset_name: str, dataset_dir: str,
                    batch_size: int) -> TrainConfig:
    """The training run_all.py times (its train_image_classifier.py flags), as a config."""
    return TrainConfig(model_name=model_name, dataset_name=dataset_name,
                       dataset_dir=dataset_dir, batch_size=batch_size, precision=precision,
                       optimizer='momentum', momentum=run_all.MOMENTUM,
                       learning_rate=run_all.LEARNING_RATE, learning_rate_decay_type='fixed',
                       weight_decay=0.0, num_readers=run_all.NUM_READERS,
                       num_preprocessing_threads=run_all.NUM_PREPROCESSING_THREADS)


def setting_session_config(precision: str, setting: Setting, model_name: str | None = None
                           ) -> tf.ConfigProto:
    """The trainer's session config for `precision` and `model_name`, changed as `setting`
    says."""
    config = session_config.make_session_config(precision,
                                                intra_op_threads=setting.intra_op_threads,
                                                inter_op_threads=setting.inter_op_threads,
                                                model_name=model_name)
    for rewrite in setting.rewrites_off:
        setattr(config.graph_options.rewrite_options, rewrite,
                rewriter_config_pb2.RewriterConfig.OFF)
    return config


def profile_step(config: TrainConfig, setting_name: str, warmup: int, timed_steps: int,
                 traced_steps: int, bound_rounds: int = 0, bound_runs: int = 1
                 ) -> StepProfile:
    """Times untraced steps, sums the kernels of traced ones, then times the bound.

    `bound_rounds` 0 leaves the bound out.
    """
    with tf.Graph().as_default() as graph:
        model = training_graph.build_training_graph(config, is_chief=True)
        convolutions = bench_conv_kernels.graph_convolutions(model.train_op)
    settings = setting_session_config(config.precision, SETTINGS[setting_name],
                                      model_name=config.model_name)
    with tf.Session(graph=graph, config=settings) as session:
        session.run(model.init_op)
        for _ in range(warmup):
            session.run(model.train_op)
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(timed_steps):
            session.run(model.train_op)
        step_ms = 1000.0 * (time.perf_counter() - start) / timed_steps
        step_cpu_ms = 1000.0 * (time.process_time() - cpu_start) / timed_steps
        options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE,
                                output_partition_graphs=True)
        ops = {}
        for _ in range(traced_steps):
            metadata = tf.RunMetadata()
            session.run(model.train_op, options=options, run_metadata=metadata)
            add_kernels(metadata, ops)
    bound_ms = None
    if bound_rounds:
        # The kernels get the setting's threads; their dtype is the precision's already.
        bound_ms = 1000.0 * bench_conv_kernels.kernel_seconds(
            convolutions, bound_rounds, bound_runs, config.precision,
            setting_session_config('float32', SETTINGS[setting_name]))
    return StepProfile(config.model_name, config.precision, setting_name, config.batch_size,
                       traced_steps, step_ms, step_cpu_ms, ops, len(convolutions), bound_ms)


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
            op = ops.setdefault((op_label(node), dtype), OpTime(op_group(node.op)))
            op.kernels += 1
            op.micros += stats.all_end_rel_micros


def op_label(node: tf.NodeDef) -> str:
    """The op's type, with the ops a fusion folded into it: '_FusedConv2D[BiasAdd,Relu]'."""
    if 'fused_ops' not in node.attr:
        return node.op
    return '%s[%s]' % (node.op, ','.join(name.decode() for name in node.attr['fused_ops'].list.s))


def summary_rows(profiles: list[StepProfile]) -> list[list[object]]:
    rows = []
    for profile in profiles:
        bound = profile.bound_ms
        convolution_ms = sum(profile.group_ms(group) for group in CONVOLUTION_GROUPS)
        rows.append([profile.model_name, profile.precision, profile.setting, profile.batch_size,
                     profile.step_ms, profile.step_cpu_ms, profile.kernel_ms,
                     profile.convolutions,
                     '-' if bound is None else '%.1f' % bound,
                     '-' if bound is None else '%.3f' % (bound / profile.step_ms),
                     '-' if bound is None else '%.2f' % (convolution_ms / bound),
                     profile.largest_other_group])
    return rows


def group_rows(profiles: list[StepProfile]) -> list[list[object]]:
    """Per profile, each group's kernel ms per step and share of the kernel time."""
    return [[profile.model_name, profile.precision, profile.setting]
            + ['%.0f %4.1f%%' % (profile.group_ms(group), 100.0 * profile.share(group))
               for group in GROUPS]
            for profile in profiles]


def op_rows(profiles: list[StepProfile], groups: list[str], top: int) -> list[list[object]]:
    """Per profile, the `top` op types of `groups` with the most kernel time."""
    rows = []
    for profile in profiles:
        ranked = sorted(((key, op) for key, op in profile.ops.items() if op.group in groups),
                        key=lambda item: -item[1].micros)
        for (op_type, dtype), op in ranked[:top]:
            rows.append([profile.model_name, profile.precision, profile.setting, op.group,
                         op_type, dtype, op.kernels // profile.steps,
                         op.micros / 1000.0 / profile.steps,
                         '%.1f%%' % (100.0 * op.micros / 1000.0 / profile.steps
                                     / profile.kernel_ms)])
    return rows


def print_tables(profiles: list[StepProfile], detail: list[str], top: int) -> None:
    print('\nTraining steps on %d cores: wall-clock ms, kernel ms summed, the convolution bound\n'
          % os.cpu_count())
    common.print_table(['net', 'precision', 'setting', 'batch', 'step ms', 'CPU ms', 'kernel ms',
                        'convs', 'bound ms', 'ours / bound', 'convs / alone',
                        'largest other group'], summary_rows(profiles))
    print('\nKernel ms per step and share of the summed kernel time, by group\n')
    common.print_table(['net', 'precision', 'setting', *GROUPS], group_rows(profiles))
    print('\nThe largest op types of %s\n' % ', '.join(detail))
    common.print_table(['net', 'precision', 'setting', 'group', 'op that ran', 'dtype',
                        'kernels/step', 'ms/step', 'share'], op_rows(profiles, detail, top))


def measure(args: argparse.Namespace, setting_name: str, work_dir: str) -> list[StepProfile]:
    """Every net and precision of `args` under one setting, in this process."""
    plans = [run_all.PLANS[name] for name in args.nets]
    directories = run_all.prepare_data(plans, os.path.join(work_dir, 'records'))
    profiles = []
    for plan in plans:
        for precision in args.precisions:
            config = training_config(plan.model_name, precision, plan.dataset_name,
                                     directories[plan.dataset_name],
                                     args.batch_size or plan.batch_size)
            profiles.append(profile_step(config, setting_name, args.warmup, args.timed_steps,
                                         args.traced_steps, args.bound_rounds, args.bound_runs))
            print('[%s] profiled %s %s (%s)' % (time.strftime('%H:%M:%S'), plan.model_name,
                                                precision, setting_name), flush=True)
    return profiles


def measure_in_child(args: argparse.Namespace, setting_name: str, work_dir: str
                     ) -> list[StepProfile]:
    """The same, in a child process under the setting's environment."""
    output = os.path.join(work_dir, '%s.json' % setting_name)
    command = [sys.executable, os.path.abspath(__file__), '--settings', setting_name,
               '--output', output, '--nets', *args.nets, '--precisions', *args.precisions,
               '--detail', *args.detail]
    for name in ('batch_size', 'warmup', 'timed_steps', 'traced_steps', 'bound_rounds',
                 'bound_runs', 'top'):
        if getattr(args, name) is not None:
            command.append('--%s=%d' % (name, getattr(args, name)))
    environment = {**os.environ, **dict(SETTINGS[setting_name].environment)}
    subprocess.run(command, env=environment, check=True)
    with open(output) as report:
        return [StepProfile.from_report(profile) for profile in json.load(report)['profiles']]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', nargs='+', choices=sorted(run_all.PLANS),
                        default=list(ISSUE_18_NETS))
    parser.add_argument('--batch_size', type=int, default=None,
                        help="every net's batch; run_all.py's plan of each net by default")
    parser.add_argument('--precisions', nargs='+', choices=list(compute.DTYPES),
                        default=list(compute.DTYPES))
    parser.add_argument('--settings', nargs='+', choices=list(SETTINGS), default=['trainer'],
                        help='; '.join('%s: %s' % (name, setting.description)
                                       for name, setting in SETTINGS.items()))
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    parser.add_argument('--timed_steps', type=int, default=5,
                        help='untraced steps whose mean wall-clock time is printed')
    parser.add_argument('--traced_steps', type=int, default=3,
                        help='traced steps whose kernel times are summed')
    parser.add_argument('--bound_rounds', type=int, default=1,
                        help='rounds of timing the convolution kernels alone, the best kept; '
                             '0 leaves the bound out')
    parser.add_argument('--bound_runs', type=int, default=2,
                        help='timed runs of each convolution per round')
    parser.add_argument('--detail', nargs='+', choices=GROUPS,
                        default=[group for group in GROUPS if group not in CONVOLUTION_GROUPS],
                        help='groups whose largest op types the last table shows')
    parser.add_argument('--top', type=int, default=10,
                        help='op types shown per net, precision and setting')
    parser.add_argument('--output', default=None, help='where the JSON report goes')
    args = parser.parse_args(argv)
    for name in ('timed_steps', 'traced_steps', 'bound_runs', 'top'):
        if getattr(args, name) < 1:
            parser.error('--%s must be >= 1; got %d' % (name, getattr(args, name)))
    for name in ('warmup', 'bound_rounds'):
        if getattr(args, name) < 0:
            parser.error('--%s must be >= 0; got %d' % (name, getattr(args, name)))
    if args.batch_size is not None and args.batch_size < 1:
        parser.error('--batch_size must be >= 1; got %d' % args.batch_size)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started, load_at_start = time.time(), os.getloadavg()
    profiles = []
    with tempfile.TemporaryDirectory() as work_dir:
        for setting_name in args.settings:
            setting_dir = os.path.join(work_dir, setting_name)
            os.makedirs(setting_dir)
            if SETTINGS[setting_name].in_effect():
                profiles += measure(args, setting_name, setting_dir)
            else:
                profiles += measure_in_child(args, setting_name, setting_dir)
    # Side by side: each net and precision under every setting.
    profiles.sort(key=lambda profile: (args.nets.index(profile.model_name),
                                       args.precisions.index(profile.precision)))
    print_tables(profiles, args.detail, args.top)
    report = {'settings': {**vars(args), 'environment': {
                  name: dict(SETTINGS[name].environment) for name in args.settings}},
              'machine': {'cores': os.cpu_count()},
              'profiles': [profile.report() for profile in profiles]}
    if args.output:
        report = common.finish_report(report, args.output, started, load_at_start)
    return report


if __name__ == '__main__':
    main()
