"""NASNet-A (Zoph et al., 2017) and PNASNet-5 (Liu et al., 2017) image classifiers.

`nasnet_utils` holds the cell machinery both share; `nasnet` and `pnasnet`
build the ImageNet networks whose public TF-Slim checkpoints restore into
them without renaming.
"""
