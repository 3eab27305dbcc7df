"""The performance suite's own arithmetic: FLOP counts, peaks, steady rates, log parsing."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))

import bench_conv_kernels  # noqa: E402
import bench_deploy  # noqa: E402
import bench_depthwise  # noqa: E402
import bench_distributed  # noqa: E402
import bench_nets  # noqa: E402
import bench_step_profile  # noqa: E402
import bench_train_eval  # noqa: E402
import compute  # noqa: E402
import run_all  # noqa: E402
import tensorflow as tf  # noqa: E402


def _conv_flops(output_size, kernel, in_channels, out_channels):
    return 2 * output_size ** 2 * out_channels * kernel ** 2 * in_channels


def test_lenet_training_flops_follow_its_layers():
    # conv1 5x5x32 and conv2 5x5x64 (SAME, each followed by a 2x2 pool), fc3 1024, fc4 10.
    forward = (_conv_flops(28, 5, 1, 32) + _conv_flops(14, 5, 32, 64)
               + 2 * 7 * 7 * 64 * 1024 + 2 * 1024 * 10)
    counted = compute.training_flops_per_image('lenet', 10, 28)
    # Bias adds and dropout add a little on top of the products.
    assert 3 * forward <= counted <= 3 * forward * 1.01


def test_vgg_16_training_flops_match_the_published_multiply_adds():
    # torchvision's model table: VGG-16 costs 15.47 G multiply-adds at 224 x 224.
    counted = compute.training_flops_per_image('vgg_16', 1000, 224)
    assert counted == pytest.approx(3 * 2 * 15.47e9, rel=0.01)


def test_keras_lenet_forward_flops_match_ours():
    # The same layers on both sides, counted by the profiler on each side's own graph.
    ours = compute.forward_flops_per_image('lenet', 10, 28)
    assert bench_nets.keras_forward_flops_per_image('lenet', (28, 28, 1), 10) == pytest.approx(
        ours, rel=1e-3)


def test_every_planned_net_has_a_keras_build():
    assert set(run_all.PLANS) <= set(bench_nets.KERAS_NETS)


def test_matmul_peak_rates_agree_with_the_cores():
    peak = compute.matmul_peak('float32', size=256, min_seconds=0.2)
    assert peak.gflops > 0
    # A process cannot use more CPU seconds per second than there are cores.
    assert peak.gflops / peak.gflops_per_cpu_second <= os.cpu_count() * 1.05


def test_matmul_peak_names_an_unknown_precision():
    with pytest.raises(ValueError, match=r"^precision must be one of float32, bf16; got 'fp8'$"):
        compute.matmul_peak('fp8')


def test_steady_rates_leave_out_the_warm_up_windows():
    windows = [{'images': 40, 'wall_seconds': 20.0, 'cpu_seconds': 30.0},
               {'images': 40, 'wall_seconds': 2.0, 'cpu_seconds': 4.0},
               {'images': 40, 'wall_seconds': 4.0, 'cpu_seconds': 6.0}]
    run = run_all.TrainRun('ours', 'lenet', 'float32', windows, warmup_windows=1,
                           peak_rss_mb=1.0, load_average=(0.0, 0.0))
    assert run.images_per_sec == pytest.approx(80 / 6.0)
    assert run.best_window_images_per_sec == pytest.approx(20.0)
    assert run.cpu_ms_per_image == pytest.approx(1000.0 * 10.0 / 80)


def _run(side, precision, images_per_sec):
    window = {'images': 100, 'wall_seconds': 100 / images_per_sec, 'cpu_seconds': 1.0}
    return run_all.TrainRun(side, 'net', precision, [window], warmup_windows=0,
                            peak_rss_mb=1.0, load_average=(0.0, 0.0))


def _cells(rows, measurement):
    row, = [row for row in rows if row.measurement.startswith(measurement)]
    return row.ratio, row.goal, row.met


@pytest.mark.parametrize('net, precision, goal', [
    ('mobilenet_v2', 'float32', '>= 1.1x'), ('nasnet_mobile', 'bf16', '>= 1.2x'),
    ('inception_v3', 'float32', '>= 1.2x'), ('vgg_16', 'bf16', '>= 1.2x')])
def test_training_rows_hold_each_net_to_its_own_goal(net, precision, goal):
    peak = compute.Peak(precision, 2048, 100.0, 50.0)
    rows = run_all.training_rows(run_all.PLANS[net], _run('ours', precision, 11.5),
                                 _run('keras', precision, 10.0), run_all.ForwardFlops(2, 4),
                                 peak)
    speed, speed_goal, met = _cells(rows, 'train images/sec')
    assert (speed, speed_goal) == (pytest.approx(1.15), goal)
    assert met == (goal == '>= 1.1x')
    # Half the FLOPs per image at 1.15x the images/sec: 0.575x the FLOP rate.
    assert _cells(rows, 'train GFLOP/s (profiler')[0] == pytest.approx(0.575)
    peak_goal = _cells(rows, 'train GFLOP/s / ')[1]
    assert peak_goal == ('>= 0.70x' if (net, precision) == ('inception_v3', 'float32') else '')


def test_inference_rows_hold_only_issue_14_nets_to_a_goal():
    rates = {'evaluation': {'ours': 12.0, 'keras': 10.0},
             'inference': {'ours': 11.0, 'keras': 10.0}}
    new = run_all.inference_rows(run_all.PLANS['resnet_v1_50'], 'bf16', rates)
    assert [(row.goal, row.met) for row in new] == [('>= 1.2x', True), ('>= 1.2x', False)]
    old = run_all.inference_rows(run_all.PLANS['vgg_16'], 'bf16', rates)
    assert [(row.goal, row.met) for row in old] == [('', None), ('', None)]


def test_scaled_plans_keep_whole_windows_and_a_steady_one():
    plan = run_all.NetPlan('lenet', 'digits', batch_size=8, steps=40, log_every=4,
                           warmup_windows=2, eval_split='test', eval_batch_size=8,
                           eval_batches=4)
    assert run_all.scale_steps(plan, 1.0) == plan
    assert (run_all.scale_steps(plan, 0.5).steps, run_all.scale_steps(plan, 0.5).eval_batches
            ) == (20, 2)
    assert (run_all.scale_steps(plan, 0.01).steps, run_all.scale_steps(plan, 0.01).eval_batches
            ) == (12, 1)


def test_our_trainer_gives_one_window_per_metrics_record(digits_dir, tmp_path):
    plan = run_all.NetPlan('lenet', 'digits', batch_size=8, steps=12, log_every=4,
                           warmup_windows=1, eval_split='test', eval_batch_size=8,
                           eval_batches=1)
    run = run_all.train_ours(plan, 'float32', digits_dir, str(tmp_path))
    assert [window['images'] for window in run.windows] == [32, 32, 32]
    assert all(window['wall_seconds'] > 0 and window['cpu_seconds'] >= 0
               for window in run.windows)
    assert run.images_per_sec > 0
    # TensorFlow alone keeps more than 100 MB resident.
    assert run.peak_rss_mb > 100


def test_distributed_runs_count_the_images_of_every_clone():
    assert bench_distributed._clones([]) == 1
    assert bench_distributed._clones(['--num_clones=2', '--clone_on_cpu']) == 2
    assert bench_distributed._clones(['--num_clones=4', '--virtual_gpus=4']) == 4


def test_distributed_rates_sum_the_workers_after_the_start_up_steps():
    log = '\n'.join(['[worker %d] INFO train: step %d: loss 1.0000, learning rate 0.01, %s '
                     'images/sec' % (worker, step, rate)
                     for worker, step, rate in [(0, 1, '5.0'), (0, 2, '100.0'), (0, 3, '100.0'),
                                                (1, 1, '7.0'), (1, 2, '50.0'), (1, 3, '50.0')]])
    rate, workers = bench_distributed.images_per_sec(log, skip_steps=1)
    assert workers == 2
    assert rate == pytest.approx(150.0)
    with pytest.raises(RuntimeError, match='too few logged steps'):
        bench_distributed.images_per_sec(log, skip_steps=3)


def test_conv_kernel_bound_takes_the_convolutions_that_run():
    lenet = bench_conv_kernels.net_convolutions('lenet', batch_size=2)
    assert [conv.filter_shape for conv in lenet] == [(5, 5, 1, 32), (5, 5, 32, 64)]
    assert [conv.needs_input_gradient for conv in lenet] == [False, True]
    assert lenet[0].flops == _conv_flops(28, 5, 1, 32) * 2
    # VGG-16's 13 convolutions; its head's fully connected layers run as matmuls.
    vgg = bench_conv_kernels.net_convolutions('vgg_16', batch_size=1)
    assert len(vgg) == 13
    assert sum(conv.flops for conv in vgg) == pytest.approx(2 * 15.35e9, rel=0.01)


@pytest.mark.parametrize('precision', ['float32', 'bf16'])
def test_conv_kernels_time_every_convolution_in_both_precisions(precision):
    lenet = bench_conv_kernels.net_convolutions('lenet', batch_size=2)
    assert len(lenet) == 2
    # Only that a time is measured: which of two timings is shorter is the machine's business.
    for convolutions in (lenet[:1], lenet):
        seconds = bench_conv_kernels.kernel_seconds(convolutions, rounds=3, runs=2,
                                                    precision=precision)
        assert 0 < seconds < 10


def test_the_suite_runs_every_precision_it_can_compare_by_default(monkeypatch):
    # float16 is a training precision, but neither a CPU matmul peak nor a Keras run here.
    monkeypatch.setattr(sys, 'argv', ['run_all.py'])
    precisions = run_all.parse_args().precisions
    assert precisions == ['float32', 'bf16']
    assert set(precisions) <= set(bench_conv_kernels.bench_nets.KERAS_POLICIES)


def test_step_profile_groups_kernels_by_the_op_that_ran():
    metadata = tf.compat.v1.RunMetadata()
    partition = metadata.partition_graphs.add()
    device = metadata.step_stats.dev_stats.add()
    for name, op, dtype_attr, micros in (
            ('dw', '_MklNativeDepthwiseConv2dNativeBackpropInput', 'T', 30),
            ('conv', '_MklNativeFusedConv2D', 'T', 50), ('cast', 'Cast', 'DstT', 15),
            ('conv_again', '_MklNativeFusedConv2D', 'T', 5),
            ('bn', '_MklFusedBatchNormEx', 'T', 40), ('relu', 'Relu6Grad', 'T', 20),
            ('update', 'ResourceApplyKerasMomentum', 'T', 25),
            ('batch', 'IteratorGetNext', None, 10), ('pool', 'MaxPoolGrad', 'T', 5)):
        node = partition.node.add(name=name, op=op)
        if dtype_attr:
            node.attr[dtype_attr].type = tf.bfloat16.as_datatype_enum
        if op == '_MklNativeFusedConv2D':
            node.attr['fused_ops'].list.s.extend([b'BiasAdd', b'Relu'])
        device.node_stats.add(node_name=name, all_end_rel_micros=micros)
    device.node_stats.add(node_name='_SOURCE', all_end_rel_micros=1000)
    ops = {}
    bench_step_profile.add_kernels(metadata, ops)
    assert ops['_MklNativeFusedConv2D[BiasAdd,Relu]', 'bfloat16'] == (
        bench_step_profile.OpTime('conv2d', 2, 55))
    assert ops['IteratorGetNext', '-'].group == 'input'
    profile = bench_step_profile.StepProfile('mobilenet_v2', 'bf16', 'trainer', batch_size=16,
                                             steps=1, step_ms=0.1, step_cpu_ms=0.2,
                                             ops=ops)
    assert {group: profile.group_ms(group) for group in bench_step_profile.GROUPS} == {
        'depthwise': 0.030, 'conv2d': 0.055, 'matmul': 0.0, 'batch_norm': 0.040,
        'activation': 0.020, 'optimizer': 0.025, 'reorder_copy': 0.015, 'input': 0.010,
        'other': 0.005}
    assert profile.kernel_ms == pytest.approx(0.2)
    assert profile.largest_other_group == 'batch_norm'
    # No bound measured: its cells say so.
    assert bench_step_profile.summary_rows([profile])[0][8:11] == ['-', '-', '-']
    assert bench_step_profile.StepProfile.from_report(profile.report()) == profile


@pytest.mark.parametrize('op_type, group', [
    ('Conv2DBackpropFilter', 'conv2d'), ('_MklNativePadWithFusedConv2D', 'conv2d'),
    ('DepthwiseConv2dNative', 'depthwise'), ('_MklNativeFusedMatMul', 'matmul'),
    ('FusedBatchNormGradV3', 'batch_norm'), ('ReluGrad', 'activation'),
    ('ApplyMomentum', 'optimizer'), ('AssignAddVariableOp', 'optimizer'),
    ('_MklToTf', 'reorder_copy'), ('Transpose', 'reorder_copy'), ('ConcatV2', 'reorder_copy'),
    ('AddN', 'other'), ('BiasAddGrad', 'other')])
def test_step_profile_groups_each_kind_of_kernel(op_type, group):
    assert bench_step_profile.op_group(op_type) == group


def test_step_profile_traces_our_training_step_against_its_convolutions(digits_dir):
    config = bench_step_profile.training_config('lenet', 'float32', 'digits', digits_dir, 4)
    profile = bench_step_profile.profile_step(config, 'trainer', warmup=1, timed_steps=1,
                                              traced_steps=1, bound_rounds=1)
    assert profile.step_ms > 0
    # LeNet: two convolutions, forward and backward, two fully connected layers, no depthwise.
    assert profile.convolutions == 2
    assert 0 < profile.bound_ms
    assert profile.group_ms('depthwise') == 0
    for group in ('conv2d', 'matmul', 'optimizer', 'input'):
        assert profile.group_ms(group) > 0, group


def test_step_profile_settings_change_the_trainers_session():
    trainer = bench_step_profile.setting_session_config(
        'bf16', bench_step_profile.SETTINGS['trainer'])
    assert trainer.inter_op_parallelism_threads == 0
    one_op = bench_step_profile.setting_session_config(
        'bf16', bench_step_profile.SETTINGS['inter_op_1'])
    assert one_op.inter_op_parallelism_threads == 1
    assert (one_op.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16
            == trainer.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 != 0)
    plain = bench_step_profile.setting_session_config(
        'float32', bench_step_profile.SETTINGS['no_remapper'])
    assert plain.graph_options.rewrite_options.remapping == 2  # RewriterConfig.OFF


def test_step_profile_settings_of_the_environment_run_where_it_is_set(monkeypatch):
    setting = bench_step_profile.SETTINGS['onednn_off']
    monkeypatch.delenv('TF_ENABLE_ONEDNN_OPTS', raising=False)
    assert not setting.in_effect()
    monkeypatch.setenv('TF_ENABLE_ONEDNN_OPTS', '0')
    assert setting.in_effect()
    assert bench_step_profile.SETTINGS['inter_op_1'].in_effect()


def test_depthwise_benchmark_is_the_step_profile_of_mobilenet_v2():
    args = bench_step_profile.parse_args(bench_depthwise.DEFAULTS)
    assert args.nets == ['mobilenet_v2']
    assert {'depthwise', 'conv2d'} <= set(args.detail)
    assert bench_step_profile.parse_args(bench_depthwise.DEFAULTS + [
        '--nets', 'nasnet_mobile']).nets == ['nasnet_mobile']


def test_conv_kernel_bound_takes_depthwise_convolutions():
    # MobileNetV2: the stem, 17 inverted residual blocks (the first one not expanded), the
    # 1x1 to 1280 channels and the logits; 17 depthwise 3x3 convolutions.
    convolutions = bench_conv_kernels.net_convolutions('mobilenet_v2', batch_size=1)
    kinds = [conv.op_type for conv in convolutions]
    assert kinds.count('DepthwiseConv2dNative') == 17
    assert kinds.count('Conv2D') == 1 + 1 + 16 * 2 + 1 + 1
    assert [conv.needs_input_gradient for conv in convolutions] == [False] + [True] * 52
    # The paper's 300 M multiply-adds at 224 x 224 (Sandler et al. 2018, table 4).
    assert sum(conv.flops for conv in convolutions) == pytest.approx(2 * 300e6, rel=0.02)


def test_the_bf16_bound_times_depthwise_kernels_in_float32_as_the_trainer_runs_them():
    shapes = ((1, 8, 8, 4), (3, 3, 4, 1), (1, 8, 8, 4), (1, 1, 1, 1), 'SAME', True)
    depthwise = bench_conv_kernels.Convolution(*shapes, op_type='DepthwiseConv2dNative')
    full = bench_conv_kernels.Convolution(*shapes, op_type='Conv2D')
    assert bench_conv_kernels.kernel_dtype(depthwise, 'bf16') == tf.float32
    assert bench_conv_kernels.kernel_dtype(full, 'bf16') == tf.bfloat16
    assert bench_conv_kernels.kernel_dtype(depthwise, 'float32') == tf.float32


@pytest.mark.parametrize('precision', ['float32', 'bf16'])
def test_conv_kernels_time_depthwise_convolutions(precision):
    depthwise = bench_conv_kernels.Convolution(
        (2, 8, 8, 4), (3, 3, 4, 1), (2, 4, 4, 4), (1, 2, 2, 1), 'SAME',
        needs_input_gradient=True, op_type='DepthwiseConv2dNative')
    assert depthwise.flops == 2 * 2 * 4 * 4 * 4 * 3 * 3
    seconds = bench_conv_kernels.kernel_seconds([depthwise], rounds=1, runs=1,
                                                precision=precision)
    assert 0 < seconds < 10


def test_deploy_benchmark_measures_every_kind_of_a_trained_lenet(tmp_path):
    output = tmp_path / 'deploy.json'
    report = bench_deploy.main(['--quick', '--batch_sizes', '1', '2', '--repeats=1',
                                '--pipeline_rounds=1', '--train_steps=60',
                                '--output=%s' % output, '--work_dir=%s' % tmp_path])
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))
    assert report['failures'] == []
    assert sorted((row['batch'], row['kind']) for row in report['latency']) == sorted(
        (batch, kind) for batch in (1, 2) for kind in bench_deploy.KINDS)
    assert all(row['ms'] > 0 for row in report['latency'])
    exports = [kind.label for kind in bench_deploy.EXPORT_KINDS]
    assert [row['kind'] for row in report['sizes']] == exports + [bench_deploy.KERAS_FILE]
    assert [row['kind'] for row in report['accuracy']] == ['checkpoint'] + exports
    # 60 steps leave LeNet far from converged, but far above chance (10%).
    assert all(row['accuracy'] > 0.3 and row['images'] == 359 for row in report['accuracy'])
    assert [row['kind'] for row in report['pipeline']] == list(bench_deploy.PIPELINE_KINDS)
    # Int8 twice as fast (per batch size, through predict_batch and alone), 4x smaller,
    # within a point; both pipelines.
    assert len(report['goals']) == 2 * 2 + 1 + 1 + 2
    assert all(goal['met'] is not None for goal in report['goals'])


def test_train_eval_benchmark_prices_each_evaluation_against_the_standalone_pass(digits_dir,
                                                                               tmp_path):
    output = tmp_path / 'train_eval.json'
    report = bench_train_eval.main(['--dataset_dir=%s' % digits_dir, '--steps=4',
                                    '--eval_every=2', '--rounds=1', '--passes=1',
                                    '--output=%s' % output, '--work_dir=%s' % tmp_path])
    assert json.loads(output.read_text()) == json.loads(json.dumps(report))
    summary, (round_,) = report['summary'], report['rounds']
    # Evaluations at steps 2 and 4, each an exact pass over the 359 test images.
    assert (round_['plain']['evaluations'], summary['evaluations'], summary['examples']) == (
        0, 2, 359)
    assert summary['cost_per_evaluation_seconds'] == pytest.approx(
        (round_['evaluating']['seconds'] - round_['plain']['seconds']) / 2)
    assert summary['cost_over_warm_pass'] == pytest.approx(
        summary['cost_per_evaluation_seconds'] / summary['standalone_warm_seconds'])
    # The profile saw every part run: two passes (and two best/ copies at most) in the
    # evaluating run, none in the plain one.
    calls = {label: spent['calls'] for label, spent in round_['evaluating']['profile'].items()}
    assert (calls['evaluations (all of the below)'], calls['pipeline restart + pass'],
            calls['restore'], calls['evaluator built']) == (2, 2, 2, 1)
    assert 1 <= calls['best/ copied'] <= 2
    plain = round_['plain']['profile']
    assert (plain['pipeline restart + pass']['calls'], plain['checkpoint saves']['calls']) == (
        0, 1)
    assert round_['evaluating']['profile']['pipeline restart + pass']['cpu_seconds'] > 0
    # The suite's table takes the same figures.
    _, wall, cpu, _ = run_all.train_eval_rows(report)
    ratio = summary['cost_over_warm_pass']
    # A run with evaluations that happened to take less time than the one without (a few
    # steps on a loaded machine) is no verdict either way.
    assert (wall.ratio, wall.goal, wall.met) == (pytest.approx(ratio), '<= 1.0x',
                                                 None if ratio < 0 else ratio <= 1.0)
    assert cpu.ratio == pytest.approx(summary['cost_per_evaluation_cpu_seconds']
                                      / summary['standalone_warm_cpu_seconds'])


@pytest.mark.parametrize('argv, expected', [
    (['--quick'], run_all.QUICK_OUTPUT), ([], run_all.DEFAULT_OUTPUT),
    (['--quick', '--output=/tmp/mine.json'], '/tmp/mine.json')])
def test_a_quick_suite_writes_its_own_report_unless_told_where(argv, expected):
    assert run_all.QUICK_OUTPUT != run_all.DEFAULT_OUTPUT
    assert run_all.parse_args(argv).output == expected


def test_the_suite_runs_every_companion_by_default_and_none_when_asked():
    assert run_all.parse_args([]).companions == ['deploy', 'train_eval', 'repeated_eval',
                                                 'batch_prediction']
    assert run_all.parse_args(['--companions']).companions == []
    assert set(run_all.COMPANION_ROWS) == set(run_all.COMPANIONS)


def test_batch_prediction_rows_give_each_model_its_ratio():
    report = {'rows': [
        {'kind': 'TFLite int8', 'batch': 8, 'images': 718, 'beside': 600.0,
         "in the model's thread": 400.0, 'raw': 450.0},
        {'kind': 'ONNX Runtime', 'batch': 8, 'images': 718, 'beside': 330.0,
         "in the model's thread": 300.0, 'raw': 310.0}]}
    rows = run_all.batch_prediction_rows(report)
    assert [(row.precision, row.ours, row.reference) for row in rows] == [
        ('int8', 600.0, 400.0), ('float32', 330.0, 300.0)]
    assert [row.ratio for row in rows] == pytest.approx([1.5, 1.1])
    assert all('batch 8' in row.measurement for row in rows)
