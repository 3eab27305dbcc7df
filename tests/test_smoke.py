"""Seconds-long smoke test, run first by `make test`: convert -> train -> evaluate -> export."""

import os

from datasets import converters
from slim_classifier.evaluation import evaluator
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.serving import exporter, labels
from slim_classifier.serving.config import ExportConfig
from slim_classifier.training import trainer
from slim_classifier.training.config import TrainConfig


def test_convert_train_evaluate_export(tmp_path):
    data, run = str(tmp_path / 'digits'), str(tmp_path / 'run')
    summary = converters.convert('digits', data)
    assert summary.converted == 1797  # scikit-learn's digits, every one of them

    result = trainer.train(TrainConfig(
        dataset_name='digits', dataset_dir=data, train_dir=run, model_name='lenet',
        batch_size=8, max_number_of_steps=2, optimizer='sgd', learning_rate_decay_type='fixed',
        num_readers=1, num_preprocessing_threads=1))
    assert result.global_step == 2

    metrics = evaluator.evaluate(EvalConfig(
        checkpoint_path=run, eval_dir=str(tmp_path / 'eval'), dataset_name='digits',
        dataset_dir=data, model_name='lenet', batch_size=16, max_num_batches=1))
    assert metrics['global_step'] == 2 and metrics['num_examples'] == 16

    exported = exporter.export(ExportConfig(
        model_name='lenet', output_file=str(tmp_path / 'lenet.pb'), checkpoint_path=run,
        class_names=labels.dataset_classes('digits', data)))
    assert os.path.getsize(exported.path) > 0
