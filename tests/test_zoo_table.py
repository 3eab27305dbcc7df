"""The zoo table (nets/zoo.py) against the published facts, and the list_models command."""

import pytest

from nets import nets_factory
from nets.zoo import ZOO
from tests import training_helpers as helpers
from tests import zoo_facts


def test_every_registered_net_has_one_zoo_entry():
    assert set(ZOO) == set(nets_factory.list_networks()) == set(zoo_facts.names())


@pytest.mark.parametrize('name', sorted(ZOO))
def test_zoo_entry_matches_the_published_facts(name):
    entry, facts = ZOO[name], zoo_facts.load(name)
    checkpoint = facts['public_checkpoint'] or {}
    assert entry.params == facts['counts']['trainable_params']
    assert entry.archive == checkpoint.get('archive')
    assert (entry.top1, entry.top5) == (checkpoint.get('top1'), checkpoint.get('top5'))
    assert entry.num_classes == facts['num_classes']
    assert list(entry.exclude_scopes) == facts['finetune_exclude_scopes']
    # The registry's preprocessing is the one the published checkpoint needs.
    assert nets_factory.get_network_spec(name).preprocessing_name == entry.preprocessing_name


def test_list_models_prints_every_net_with_its_checkpoint():
    result = helpers.run_command('list_models.py')
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ['net', 'size', 'params']
    by_name = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(by_name) == set(ZOO)
    assert by_name['resnet_v1_50'] == ['resnet_v1_50', '224', '25.6M', 'vgg', '1000', '75.2',
                                       '92.2', 'resnet_v1_50_2016_08_28.tar.gz']
    assert by_name['lenet'][-3:] == ['-', '-', '-']
