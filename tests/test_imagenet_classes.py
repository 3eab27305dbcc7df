"""The bundled ImageNet class names: 1000 ILSVRC-2012 classes in the standard order, plus background."""

from datasets import dataset_factory
from slim_classifier.serving import labels


def test_the_standard_order_with_background_first():
    names = dataset_factory.imagenet_class_names()
    assert len(names) == 1001 == dataset_factory.DATASETS['imagenet'].num_classes
    assert names[0] == 'background'
    assert names[1] == 'tench, Tinca tinca'
    # Well-known indices of the 1000-class order (0-based), here shifted by the background.
    assert names[1 + 207] == 'golden retriever'
    assert names[1 + 281] == 'tabby, tabby cat'
    assert names[1000] == 'toilet tissue, toilet paper, bathroom tissue'


def test_the_file_lists_each_synset_once_in_sorted_order():
    with open(dataset_factory.IMAGENET_CLASSES_FILE, encoding='utf-8') as classes:
        synsets = [line.split('\t')[0] for line in classes]
    assert len(synsets) == len(set(synsets)) == 1000
    assert synsets == sorted(synsets)
    assert all(synset.startswith('n') and len(synset) == 9 for synset in synsets)


def test_exports_of_1000_class_nets_drop_the_background():
    assert labels.dataset_classes('imagenet', None, labels_offset=1)[:2] == [
        'tench, Tinca tinca', 'goldfish, Carassius auratus']
    assert len(labels.dataset_classes('imagenet', None, labels_offset=0)) == 1001
