"""The published TF-Slim model zoo: one table of every net's checkpoint and accuracy.

For each registered net: its trainable parameters, and where a public
checkpoint exists, the archive name, its class count (1001 with a background
class at 0; 1000 for the nets converted from Caffe), the image size and
preprocessing it was trained with (ResNet v2: inception at 299, not the
original factory's vgg), the head scopes a fine-tuner excludes, and the
published top-1/top-5 accuracy. The facts come from the upstream READMEs and
definitions (tests/zoo/*.json); `list_models` prints this table.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    params: int
    archive: str | None  # the published checkpoint archive, None where none was published
    num_classes: int
    image_size: int
    preprocessing_name: str
    exclude_scopes: tuple[str, ...]
    top1: float | None
    top5: float | None


ZOO: dict[str, ZooEntry] = {
    'alexnet_v2': ZooEntry(
        50_303_912, None, 1000, 224, 'vgg',
        ('alexnet_v2/fc8',), None, None),
    'cifarnet': ZooEntry(
        1_756_426, None, 10, 32, 'cifarnet',
        ('CifarNet/logits',), None, None),
    'inception_resnet_v2': ZooEntry(
        59_182_258, 'inception_resnet_v2_2016_08_30.tar.gz', 1001, 299, 'inception',
        ('InceptionResnetV2/Logits', 'InceptionResnetV2/AuxLogits'), 80.4, 95.3),
    'inception_v1': ZooEntry(
        6_618_649, 'inception_v1_2016_08_28.tar.gz', 1001, 224, 'inception',
        ('InceptionV1/Logits',), 69.8, 89.6),
    'inception_v2': ZooEntry(
        11_179_361, 'inception_v2_2016_08_28.tar.gz', 1001, 224, 'inception',
        ('InceptionV2/Logits',), 73.9, 91.8),
    'inception_v3': ZooEntry(
        27_145_970, 'inception_v3_2016_08_28.tar.gz', 1001, 299, 'inception',
        ('InceptionV3/Logits', 'InceptionV3/AuxLogits'), 78.0, 93.9),
    'inception_v4': ZooEntry(
        46_009_106, 'inception_v4_2016_09_09.tar.gz', 1001, 299, 'inception',
        ('InceptionV4/Logits', 'InceptionV4/AuxLogits'), 80.2, 95.2),
    'lenet': ZooEntry(
        3_274_634, None, 10, 28, 'lenet',
        ('LeNet/fc4',), None, None),
    'mobilenet_edgetpu': ZooEntry(
        4_092_713, 'mobilenet_edgetpu_224_1.0.tgz', 1001, 224, 'inception',
        ('MobilenetEdgeTPU/Logits',), 75.6, None),
    'mobilenet_edgetpu_075': ZooEntry(
        2_989_441, 'mobilenet_edgetpu_224_0.75.tgz', 1001, 224, 'inception',
        ('MobilenetEdgeTPU/Logits',), 73.5, None),
    'mobilenet_v1': ZooEntry(
        4_233_001, 'mobilenet_v1_1.0_224.tgz', 1001, 224, 'inception',
        ('MobilenetV1/Logits',), 70.9, 89.9),
    'mobilenet_v1_025': ZooEntry(
        470_329, 'mobilenet_v1_0.25_224.tgz', 1001, 224, 'inception',
        ('MobilenetV1/Logits',), 49.8, 74.2),
    'mobilenet_v1_050': ZooEntry(
        1_332_105, 'mobilenet_v1_0.5_224.tgz', 1001, 224, 'inception',
        ('MobilenetV1/Logits',), 63.3, 84.9),
    'mobilenet_v1_075': ZooEntry(
        2_586_329, 'mobilenet_v1_0.75_224.tgz', 1001, 224, 'inception',
        ('MobilenetV1/Logits',), 68.4, 88.2),
    'mobilenet_v2': ZooEntry(
        3_506_153, 'mobilenet_v2_1.0_224.tgz', 1001, 224, 'inception',
        ('MobilenetV2/Logits',), 71.8, 91.0),
    'mobilenet_v2_035': ZooEntry(
        1_678_409, 'mobilenet_v2_0.35_224.tgz', 1001, 224, 'inception',
        ('MobilenetV2/Logits',), 60.3, 82.9),
    'mobilenet_v2_050': ZooEntry(
        1_969_961, 'mobilenet_v2_0.5_224.tgz', 1001, 224, 'inception',
        ('MobilenetV2/Logits',), 65.4, 86.4),
    'mobilenet_v2_140': ZooEntry(
        6_110_569, 'mobilenet_v2_1.4_224.tgz', 1001, 224, 'inception',
        ('MobilenetV2/Logits',), 75.0, 92.5),
    'mobilenet_v3_large': ZooEntry(
        5_484_313, 'v3-large_224_1.0_float.tgz', 1001, 224, 'inception',
        ('MobilenetV3/Logits',), 75.2, None),
    'mobilenet_v3_large_minimalistic': ZooEntry(
        3_925_569, 'v3-large-minimalistic_224_1.0_float.tgz', 1001, 224, 'inception',
        ('MobilenetV3/Logits',), 72.3, None),
    'mobilenet_v3_small': ZooEntry(
        2_543_881, 'v3-small_224_1.0_float.tgz', 1001, 224, 'inception',
        ('MobilenetV3/Logits',), 67.5, None),
    'mobilenet_v3_small_minimalistic': ZooEntry(
        2_045_761, 'v3-small-minimalistic_224_1.0_float.tgz', 1001, 224, 'inception',
        ('MobilenetV3/Logits',), 61.9, None),
    'nasnet_large': ZooEntry(
        93_325_736, 'nasnet-a_large_04_10_2017.tar.gz', 1001, 331, 'inception',
        ('final_layer', 'aux_11'), 82.7, 96.2),
    'nasnet_mobile': ZooEntry(
        7_703_044, 'nasnet-a_mobile_04_10_2017.tar.gz', 1001, 224, 'inception',
        ('final_layer', 'aux_7'), 74.0, 91.6),
    'pnasnet_large': ZooEntry(
        90_648_974, 'pnasnet-5_large_2017_12_13.tar.gz', 1001, 331, 'inception',
        ('final_layer', 'aux_7'), 82.9, 96.2),
    'pnasnet_mobile': ZooEntry(
        7_479_113, 'pnasnet-5_mobile_2017_12_13.tar.gz', 1001, 224, 'inception',
        ('final_layer', 'aux_5'), 74.2, 91.9),
    'resnet_v1_101': ZooEntry(
        44_549_160, 'resnet_v1_101_2016_08_28.tar.gz', 1000, 224, 'vgg',
        ('resnet_v1_101/logits',), 76.4, 92.9),
    'resnet_v1_152': ZooEntry(
        60_192_808, 'resnet_v1_152_2016_08_28.tar.gz', 1000, 224, 'vgg',
        ('resnet_v1_152/logits',), 76.8, 93.2),
    'resnet_v1_200': ZooEntry(
        64_673_832, None, 1000, 224, 'vgg',
        ('resnet_v1_200/logits',), None, None),
    'resnet_v1_50': ZooEntry(
        25_557_032, 'resnet_v1_50_2016_08_28.tar.gz', 1000, 224, 'vgg',
        ('resnet_v1_50/logits',), 75.2, 92.2),
    'resnet_v2_101': ZooEntry(
        44_579_945, 'resnet_v2_101_2017_04_14.tar.gz', 1001, 299, 'inception',
        ('resnet_v2_101/logits',), 77.0, 93.7),
    'resnet_v2_152': ZooEntry(
        60_238_953, 'resnet_v2_152_2017_04_14.tar.gz', 1001, 299, 'inception',
        ('resnet_v2_152/logits',), 77.8, 94.1),
    'resnet_v2_200': ZooEntry(
        64_728_169, None, 1001, 299, 'inception',
        ('resnet_v2_200/logits',), 79.9, 95.2),
    'resnet_v2_50': ZooEntry(
        25_570_409, 'resnet_v2_50_2017_04_14.tar.gz', 1001, 299, 'inception',
        ('resnet_v2_50/logits',), 75.6, 92.8),
    'vgg_16': ZooEntry(
        138_357_544, 'vgg_16_2016_08_28.tar.gz', 1000, 224, 'vgg',
        ('vgg_16/fc8',), 71.5, 89.8),
    'vgg_19': ZooEntry(
        143_667_240, 'vgg_19_2016_08_28.tar.gz', 1000, 224, 'vgg',
        ('vgg_19/fc8',), 71.1, 89.8),
    'vgg_a': ZooEntry(
        132_863_336, None, 1000, 224, 'vgg',
        ('vgg_a/fc8',), None, None),
}
