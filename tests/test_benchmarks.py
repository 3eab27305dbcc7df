"""The performance suite's own arithmetic: FLOP counts, peaks, steady rates, log parsing."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))

import bench_conv_kernels  # noqa: E402
import bench_distributed  # noqa: E402
import compute  # noqa: E402
import run_all  # noqa: E402


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
    first = bench_conv_kernels.kernel_seconds(lenet[:1], rounds=3, runs=2, precision=precision)
    both = bench_conv_kernels.kernel_seconds(lenet, rounds=3, runs=2, precision=precision)
    assert 0 < first < both < 10


def test_the_suite_runs_every_precision_it_can_compare_by_default(monkeypatch):
    # float16 is a training precision, but neither a CPU matmul peak nor a Keras run here.
    monkeypatch.setattr(sys, 'argv', ['run_all.py'])
    precisions = run_all.parse_args().precisions
    assert precisions == ['float32', 'bf16']
    assert set(precisions) <= set(bench_conv_kernels.bench_nets.KERAS_POLICIES)
