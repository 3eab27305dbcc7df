"""Lists every registered net: image size, parameters, preprocessing, published checkpoint and accuracy.

    python list_models.py

From the registry (nets/nets_factory.py) and the zoo table (nets/zoo.py); no
TensorFlow is imported.
"""

import sys

from nets import nets_factory
from nets.zoo import ZOO

HEADER = ('net', 'size', 'params', 'preprocessing', 'classes', 'top-1', 'top-5',
          'published checkpoint')


def rows() -> list[tuple[str, ...]]:
    """One row per registered net, in name order."""
    table = []
    for name in nets_factory.list_networks():
        spec, entry = nets_factory.get_network_spec(name), ZOO[name]
        table.append((name, str(spec.default_image_size), '%.1fM' % (entry.params / 1e6),
                      spec.preprocessing_name, str(entry.num_classes),
                      '%.1f' % entry.top1 if entry.top1 else '-',
                      '%.1f' % entry.top5 if entry.top5 else '-', entry.archive or '-'))
    return table


def main() -> int:
    if len(sys.argv) > 1:
        print(__doc__.strip())
        return 0 if sys.argv[1] in ('-h', '--help') else 2
    table = [HEADER, *rows()]
    widths = [max(len(row[column]) for row in table) for column in range(len(HEADER))]
    for row in table:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == '__main__':
    run()
