"""Writes datasets/imagenet_classes.txt: the 1000 ILSVRC-2012 classes in the standard order.

The standard order is the WordNet ids (synsets) sorted, as the original
build_imagenet_data.py numbers them (1-1000; 0 is the background class). The
synsets and their WordNet lemmas are public data that pytorch-image-models
ships in its wheel (timm/data/_info/); this script takes them from there:

    python tools/make_imagenet_classes.py

Each output line is `<synset>\\t<lemmas>`, in label order.
"""

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

OUTPUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'datasets',
                      'imagenet_classes.txt')
SYNSETS = 'timm/data/_info/imagenet_synsets.txt'
LEMMAS = 'timm/data/_info/imagenet_synset_to_lemma.txt'


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet', 'timm',
                        '-d', directory], check=True)
        with zipfile.ZipFile(glob.glob(os.path.join(directory, 'timm-*.whl'))[0]) as wheel:
            synsets = wheel.read(SYNSETS).decode('utf-8').split()
            lemmas = dict(line.split('\t', 1) for line in
                          wheel.read(LEMMAS).decode('utf-8').splitlines() if '\t' in line)
    if len(synsets) != 1000 or synsets != sorted(synsets):
        raise SystemExit('expected the 1000 ILSVRC-2012 synsets in sorted order')
    with open(OUTPUT, 'w', encoding='utf-8') as output:
        output.writelines('%s\t%s\n' % (synset, lemmas[synset]) for synset in synsets)
    print('wrote %s' % OUTPUT)


if __name__ == '__main__':
    main()
