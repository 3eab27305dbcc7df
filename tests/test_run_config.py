"""The saved run: train_config.json and metrics.jsonl, and eval/export/classify from RUN alone."""

import json
import os

import pytest
from PIL import Image

from slim_classifier.runtime import run_config
from tests import training_helpers as helpers

STEPS = 20


@pytest.fixture(scope='module')
def run_dir(digits_dir, tmp_path_factory):
    """A LeNet run on digits, trained from the command line."""
    directory = str(tmp_path_factory.mktemp('run'))
    helpers.run_command('train_image_classifier.py', '--dataset_name=digits',
                        '--dataset_dir=' + digits_dir, '--model_name=lenet',
                        '--train_dir=' + directory, '--max_number_of_steps=%d' % STEPS,
                        '--log_every_n_steps=5', '--optimizer=momentum', '--learning_rate=0.01',
                        '--learning_rate_decay_type=fixed', '--batch_size=16')
    return directory


def test_train_config_records_every_resolved_option_and_the_versions(run_dir, digits_dir):
    with open(os.path.join(run_dir, run_config.RUN_CONFIG_FILENAME)) as f:
        record = json.load(f)
    options = record['options']
    assert options['model_name'] == 'lenet'
    assert options['dataset_dir'] == digits_dir
    assert options['optimizer'] == 'momentum'
    assert options['rmsprop_decay'] == 0.9  # defaults are recorded too
    assert record['num_classes'] == 10
    assert set(record['versions']) >= {'tensorflow', 'tf-slim', 'slim-image-classifier'}


def test_metrics_jsonl_has_one_object_per_logged_step(run_dir):
    with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
        records = [json.loads(line) for line in f]
    assert [r['step'] for r in records] == list(range(5, STEPS + 1, 5))
    for record in records:
        assert set(record) == {'step', 'loss', 'learning_rate', 'images_per_sec', 'wall_time'}
        assert record['learning_rate'] == pytest.approx(0.01)
        assert record['images_per_sec'] > 0
    assert records == sorted(records, key=lambda r: r['wall_time'])


def test_resuming_keeps_train_config_and_appends_metrics(run_dir, digits_dir, tmp_path):
    resumed = str(tmp_path / 'resumed')
    args = ['--dataset_name=digits', '--dataset_dir=' + digits_dir, '--model_name=lenet',
            '--train_dir=' + resumed, '--log_every_n_steps=5', '--batch_size=8',
            '--optimizer=sgd', '--learning_rate_decay_type=fixed']
    helpers.run_command('train_image_classifier.py', '--max_number_of_steps=5', *args)
    config_path = os.path.join(resumed, run_config.RUN_CONFIG_FILENAME)
    first = open(config_path).read()
    helpers.run_command('train_image_classifier.py', '--max_number_of_steps=10', *args)
    assert open(config_path).read() == first
    steps = [json.loads(line)['step'] for line in open(os.path.join(resumed, 'metrics.jsonl'))]
    assert steps == [5, 10]


def test_eval_with_the_run_directory_alone(run_dir, tmp_path):
    eval_dir = tmp_path / 'eval'
    result = helpers.run_command('eval_image_classifier.py', '--checkpoint_path=' + run_dir,
                                 '--eval_dir=%s' % eval_dir, '--dataset_split_name=test')
    metrics = json.loads((eval_dir / 'metrics.json').read_text())
    assert metrics['model_name'] == 'lenet' and metrics['dataset_name'] == 'digits'
    assert metrics['dataset_split_name'] == 'test'
    assert str(eval_dir) in result.stdout


def test_eval_defaults_to_the_test_split_of_digits(run_dir, tmp_path):
    eval_dir = tmp_path / 'eval'
    helpers.run_command('eval_image_classifier.py', '--checkpoint_path=' + run_dir,
                        '--eval_dir=%s' % eval_dir)
    assert json.loads((eval_dir / 'metrics.json').read_text())['dataset_split_name'] == 'test'


def test_export_and_classify_with_the_run_directory_alone(run_dir, tmp_path):
    exported = tmp_path / 'lenet.pb'
    helpers.run_command('export_inference_graph.py', '--checkpoint_path=' + run_dir,
                        '--output_file=%s' % exported)
    assert exported.stat().st_size > 0
    image = tmp_path / 'seven.png'
    Image.new('L', (28, 28), 0).save(image)
    result = helpers.run_command('classify_image.py', '--model_path=' + run_dir, str(image))
    lines = result.stdout.strip().splitlines()
    assert lines[0] == str(image)
    assert len(lines) == 6  # the top 5 of the 10 digit classes, by name
    assert all(line.split()[1] in '0123456789' for line in lines[1:])


def test_an_explicit_flag_wins_but_another_net_is_one_line(run_dir, tmp_path):
    result = helpers.run_command('eval_image_classifier.py', '--checkpoint_path=' + run_dir,
                                 '--eval_dir=%s' % (tmp_path / 'e'), '--model_name=cifarnet',
                                 check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: --model_name=cifarnet cannot use %s: it was trained as '
                           '--model_name=lenet' % run_dir)
    wins = helpers.run_command('eval_image_classifier.py', '--checkpoint_path=' + run_dir,
                               '--eval_dir=%s' % (tmp_path / 'v'),
                               '--dataset_split_name=train', '--batch_size=7')
    assert 'digits/train' in wins.stdout


def test_another_class_count_is_one_line(run_dir, tmp_path):
    result = helpers.run_command('eval_image_classifier.py', '--checkpoint_path=' + run_dir,
                                 '--eval_dir=%s' % (tmp_path / 'e'), '--labels_offset=1',
                                 check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith('error: checkpoint ')
    assert 'LeNet/fc4/biases is [10] in the checkpoint, [9] in the net' in result.stderr


def test_a_checkpoint_inside_the_run_finds_its_config(run_dir):
    checkpoint = os.path.join(run_dir, 'model.ckpt-%d' % STEPS)
    assert run_config.find_run_dir(checkpoint) == run_dir
    assert run_config.find_run_dir(os.path.dirname(run_dir)) is None
    values = run_config.inherited_values(checkpoint, ['model_name', 'eval_image_size',
                                                      'batch_size'], explicit=set())
    assert values == {'model_name': 'lenet', 'eval_image_size': None}


def test_a_failed_first_run_leaves_no_train_dir_behind(digits_dir, tmp_path):
    from slim_classifier.training import trainer
    new = tmp_path / 'new'
    with pytest.raises(ValueError, match="unknown network 'lenet5'"):
        trainer.train(helpers.lenet_config(new, digits_dir, model_name='lenet5',
                                           max_number_of_steps=1))
    assert not new.exists()
    existing = tmp_path / 'existing'
    existing.mkdir()
    (existing / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError):
        trainer.train(helpers.lenet_config(existing, digits_dir, model_name='lenet5',
                                           max_number_of_steps=1))
    assert sorted(os.listdir(existing)) == ['notes.txt']


def test_classify_takes_a_directory_and_lists_what_it_cannot_read(run_dir, tmp_path):
    photos = tmp_path / 'photos'
    (photos / 'more').mkdir(parents=True)
    Image.new('L', (28, 28), 0).save(photos / 'a.png')
    Image.new('L', (28, 28), 255).save(photos / 'more' / 'b.png')
    (photos / 'notes.txt').write_text('not an image')
    (photos / '.hidden.png').write_text('skipped')
    result = helpers.run_command('classify_image.py', '--model_path=' + run_dir, str(photos),
                                 check=False)
    assert result.returncode == 1
    classified = [line for line in result.stdout.splitlines() if not line.startswith(' ')]
    assert classified == [str(photos / 'a.png'), str(photos / 'more' / 'b.png')]
    assert 'could not classify 1 of 3 images' in result.stderr
    assert str(photos / 'notes.txt') in result.stderr
