"""Where MobileNetV2's training step spends its time: depthwise convolutions, Conv2D, the rest.

`bench_step_profile.py` on mobilenet_v2 at run_all.py's batch, in float32
and bf16, with every op type of its convolutions listed by dtype (oneDNN's
depthwise backprops are much slower in bfloat16) next to the activations and
the casts and reorders around them. Any of bench_step_profile.py's options
may follow, and replace these defaults.

    python benchmarks/bench_depthwise.py                          # about 2 minutes on 2 cores
    python benchmarks/bench_depthwise.py --precisions bf16 --traced_steps 2
    python benchmarks/bench_depthwise.py --nets nasnet_mobile     # made of separable convolutions
"""

import sys

import bench_step_profile

DEFAULTS = ['--nets', 'mobilenet_v2', '--detail', 'depthwise', 'conv2d', 'activation',
            'reorder_copy', '--top', '16']


def main(argv: list[str] | None = None) -> dict:
    return bench_step_profile.main(DEFAULTS + (sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
    main()
