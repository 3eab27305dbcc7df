"""The commands' flags: generated from the configs, grouped --help, bad values, quiet output."""

import re
import subprocess
import sys

import pytest

from slim_classifier.cli import flags
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.runtime import options
from slim_classifier.serving.config import ExportConfig
from slim_classifier.training import config
from tests import training_helpers as helpers

COMMANDS = ('train_image_classifier.py', 'eval_image_classifier.py',
            'export_inference_graph.py', 'classify_image.py', 'predict_image_classifier.py',
            'download_and_convert_data.py')
MODEL_COMMANDS = ('classify_image.py', 'predict_image_classifier.py')
CPP_LOG_LINE = re.compile(r'^[IWEF]\d{4} |absl::InitializeLog|oneDNN custom operations|cuInit',
                          re.M)


@pytest.mark.parametrize('command', COMMANDS)
def test_help_lists_the_commands_own_flags_by_group(command):
    result = helpers.run_command(command, '--help')
    assert result.returncode == 0
    text = result.stdout
    assert re.search(r'^Data:$', text, re.M)
    assert ('--model_path' if command in MODEL_COMMANDS else '--dataset_dir') in text
    assert '--tpu' not in text and '--helpfull' in text  # absl's own flags stay out
    if command == 'train_image_classifier.py':
        for heading in ('Optimizer:', 'Learning rate:', 'Fine-tuning:', 'Distribution:',
                        'Performance:'):
            assert heading in text
        flat = ' '.join(text.split())
        assert ('One of: adadelta, adagrad, adam, adamax, adamw, ftrl, momentum, nadam, nadamax, '
                'rmsprop, sgd.') in flat
        assert re.search(r'--adam_beta1 Decay of the 1st moment estimates; read by '
                         r'--optimizer=adam, adamax, adamw, nadam, nadamax\. Default: 0\.9\.',
                         flat)
        assert 'Registered: alexnet_v2, cifarnet,' in flat


@pytest.mark.parametrize('arguments', [['--help'], ['--no_such_flag=1']])
def test_help_and_a_misspelt_flag_import_no_tensorflow(arguments):
    result = subprocess.run(
        [sys.executable, '-X', 'importtime', helpers.REPO + '/train_image_classifier.py',
         *arguments], capture_output=True, text=True, cwd=helpers.REPO, timeout=60)
    imported = [line.split('|')[-1].strip() for line in result.stderr.splitlines()
                if line.startswith('import time:')]
    assert imported, 'no import was timed'
    assert not [name for name in imported if name.startswith('tensorflow')]
    if arguments[0] == '--no_such_flag=1':
        assert result.returncode != 0
        assert 'no_such_flag' in result.stderr


def test_the_commands_import_tensorflow_without_keras_which_still_loads_on_use():
    script = ('import sys\n'
              'from slim_classifier.cli import runner\n'
              'runner.import_tensorflow_silently()\n'
              'import tensorflow as tf\n'
              'print(sorted(name for name in ("keras", "tf_keras") if name in sys.modules))\n'
              'print(tf.keras.layers.Dense(3).units, "keras" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            cwd=helpers.REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['[]', '3 True']


def test_every_training_option_is_defined_once():
    names = [field.name for field in options.options_of(config.TrainConfig)]
    assert len(names) == len(set(names))
    flag_names = [field.name for field in flags.flag_fields(config.TrainConfig,
                                                            config.ClusterFlags)]
    assert len(flag_names) == len(set(flag_names))
    # Shared option groups are inherited, not redefined.
    for shared in ('dataset_dir', 'model_name', 'precision', 'num_readers'):
        owners = [cls.__name__ for cls in (config.TrainConfig, EvalConfig)
                  if shared in cls.__dataclass_fields__]
        assert len(owners) == 2


def test_optimizer_table_drives_the_choices_and_what_each_reads():
    choices = next(f for f in options.options_of(config.TrainConfig)
                   if f.name == 'optimizer').metadata['choices']
    assert choices == tuple(config.OPTIMIZERS)
    train = config.TrainConfig(dataset_dir='/d', optimizer='adam', adam_beta1=0.5)
    assert train.optimizer_params() == {'adam_beta1': 0.5, 'adam_beta2': 0.999,
                                        'opt_epsilon': 1.0}


@pytest.mark.parametrize('overrides, message', [
    (dict(learning_rate=float('inf')), '--learning_rate must be > 0 and finite; got inf'),
    (dict(learning_rate=float('nan')), '--learning_rate must be > 0 and finite; got nan'),
    (dict(weight_decay=float('nan')), '--weight_decay must be >= 0 and finite; got nan'),
    (dict(momentum=float('inf')), '--momentum must be in [0, 1); got inf'),
    (dict(adam_beta1=1.0), '--adam_beta1 must be in [0, 1); got 1.0'),
    (dict(learning_rate_decay_factor=0.0), '--learning_rate_decay_factor must be > 0'),
    (dict(train_image_size=0), '--train_image_size must be > 0 and finite; got 0'),
    (dict(optimizer='adamz'), "--optimizer must be one of adadelta, adagrad, adam, adamax, "
                              "adamw, ftrl, momentum, nadam, nadamax, rmsprop, sgd; got 'adamz'"),
    (dict(dataset_dir=None), '--dataset_dir is required'),
])
def test_bad_training_options_name_the_flag(overrides, message):
    values = dict(dataset_dir='/d', **overrides) if 'dataset_dir' not in overrides else overrides
    with pytest.raises(ValueError) as error:
        config.TrainConfig(**values)
    assert str(error.value).startswith(message)


def test_a_bad_flag_value_is_one_line_before_tensorflow_starts(tmp_path):
    result = helpers.run_command('train_image_classifier.py', '--dataset_dir=%s' % tmp_path,
                                 '--learning_rate=inf', check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: --learning_rate must be > 0 and finite; got inf'


def test_export_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="--export_format must be one of graphdef"):
        ExportConfig(output_file=str(tmp_path / 'x'), export_format='coreml')


def test_the_commands_are_quiet_by_default(tmp_path):
    """No TensorFlow banners, C++ log lines or deprecation warnings."""
    quiet = helpers.run_command('download_and_convert_data.py', '--dataset_name=digits',
                                '--dataset_dir=%s' % (tmp_path / 'quiet'), env={
                                    'TF_CPP_MIN_LOG_LEVEL': ''})
    assert not CPP_LOG_LINE.search(quiet.stderr), quiet.stderr[:2000]
    assert 'Warning' not in quiet.stderr
    assert 'The dataset and its conversion report are in' in quiet.stdout
