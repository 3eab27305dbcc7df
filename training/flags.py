"""Every command-line flag of train, eval and export, defined once.

Each command calls the `define_*` groups it needs; the names and defaults are
those of the original TF-Slim tools. Invalid choices fail at start: enum flags
name the allowed values, and the validators below name the flag.
"""

from absl import flags

from training import cluster, optimization, session_config


def _positive(name: str, allow_none: bool = False) -> None:
    flags.register_validator(
        name, lambda value: (allow_none and value is None) or (value is not None and value > 0),
        message='--%s must be > 0' % name)


def _at_least_zero(name: str) -> None:
    flags.register_validator(name, lambda value: value is None or value >= 0,
                             message='--%s must be >= 0' % name)


def define_dataset_flags(default_split: str, default_batch_size: int = 32) -> None:
    """Flags naming the data and how it is read (train, eval, export)."""
    flags.DEFINE_string('dataset_name', 'imagenet', 'The name of the dataset to load.')
    flags.DEFINE_string('dataset_split_name', default_split, 'The name of the split to use.')
    flags.DEFINE_string('dataset_dir', None, 'The directory holding the dataset files.')
    flags.DEFINE_integer('labels_offset', 0,
                         'Subtracted from every label: 1 for 1000-class nets on 1001-class '
                         'ImageNet records (the background class).')
    flags.DEFINE_string('preprocessing_name', None,
                        'The preprocessing to use; by default the net\'s own.')
    flags.DEFINE_bool('use_grayscale', False, 'Convert images to grayscale before the net.')
    flags.DEFINE_integer('batch_size', default_batch_size, 'The number of images in each batch.')
    _positive('batch_size')
    _at_least_zero('labels_offset')


def define_model_flags() -> None:
    """Flags choosing the network (train, eval, export)."""
    flags.DEFINE_string('model_name', 'inception_v3', 'The name of the network to use.')
    flags.DEFINE_float('moving_average_decay', None,
                       'Decay of the moving averages of the weights; None to keep none.')
    flags.register_validator(
        'moving_average_decay', lambda value: value is None or 0.0 < value < 1.0,
        message='--moving_average_decay must be in (0, 1)')


def define_performance_flags() -> None:
    """Compute precision and JIT compilation (train, eval)."""
    flags.DEFINE_enum('precision', 'float32', session_config.PRECISIONS,
                      'Compute precision: bf16 uses bfloat16 math (oneDNN automatic mixed '
                      'precision on CPUs); float16 uses half-precision math with dynamic loss '
                      'scaling on GPUs (emulated, slowly, without one); variables and '
                      'checkpoints stay float32.')
    flags.DEFINE_bool('xla', False, 'Compile the graph with XLA (JIT).')


def define_reader_flags() -> None:
    """Flags of the input pipeline's parallelism (train, eval)."""
    flags.DEFINE_integer('num_readers', 4, 'Shards read in parallel.')
    flags.DEFINE_integer('num_preprocessing_threads', 4, 'Images decoded and preprocessed '
                         'in parallel.')
    _positive('num_readers')
    _positive('num_preprocessing_threads')


def define_train_flags() -> None:
    """All flags of train_image_classifier.py."""
    define_dataset_flags(default_split='train')
    define_model_flags()
    define_reader_flags()
    define_performance_flags()
    flags.DEFINE_string('train_dir', '/tmp/tfmodel/', 'Where checkpoints and event logs go.')
    flags.DEFINE_integer('train_image_size', None, 'Train image size; the net\'s default if unset.')
    flags.DEFINE_float('weight_decay', 0.00004, 'The weight decay on the model weights.')
    flags.DEFINE_integer('max_number_of_steps', None, 'The maximum number of training steps.')
    flags.DEFINE_integer('log_every_n_steps', 10, 'How often to log progress, in steps.')
    flags.DEFINE_integer('save_summaries_secs', 600, 'How often to write summaries, in seconds.')
    flags.DEFINE_integer('save_interval_secs', 600, 'How often to save a checkpoint, in seconds.')
    flags.DEFINE_bool('summarize_activations', False, 'Add histograms and sparsity of every '
                      'end point to the summaries.')
    _positive('max_number_of_steps', allow_none=True)
    _positive('log_every_n_steps')
    _positive('save_summaries_secs')
    _positive('save_interval_secs')
    _define_deployment_flags()
    _define_optimizer_flags()
    _define_learning_rate_flags()
    _define_fine_tuning_flags()


def _define_deployment_flags() -> None:
    flags.DEFINE_string('master', '', 'The address of the TensorFlow master to use; a cluster '
                        '(--ps_hosts/--worker_hosts or TF_CONFIG) gives its own.')
    flags.DEFINE_integer('num_clones', 1, 'Model clones to deploy (one per GPU).')
    flags.DEFINE_bool('clone_on_cpu', False, 'Put every clone on the CPU.')
    flags.DEFINE_integer('worker_replicas', 1, 'Number of worker replicas; derived from the '
                         'cluster, so if given it must match it.')
    flags.DEFINE_integer('num_ps_tasks', 0, 'Number of parameter servers; derived from the '
                         'cluster, so if given it must match it. 0 keeps the variables on the '
                         'local worker.')
    flags.DEFINE_integer('task', 0, 'Task id of this process in its --job_name.')
    flags.DEFINE_bool('sync_replicas', False, 'Aggregate the replicas\' gradients '
                      'synchronously.')
    flags.DEFINE_integer('replicas_to_aggregate', None, 'Gradients averaged per update '
                         'with --sync_replicas; every worker\'s if unset.')
    _positive('num_clones')
    _positive('worker_replicas')
    _positive('replicas_to_aggregate', allow_none=True)
    _at_least_zero('num_ps_tasks')
    _at_least_zero('task')
    _define_cluster_flags()


def _define_cluster_flags() -> None:
    flags.DEFINE_string('ps_hosts', None, 'Comma-separated host:port of the parameter '
                        'servers, e.g. ps0:2222,ps1:2222. With --worker_hosts, --job_name and '
                        '--task it places this process in a cluster; if both host lists are '
                        'unset, the TF_CONFIG environment variable is read instead.')
    flags.DEFINE_string('worker_hosts', None, 'Comma-separated host:port of the workers; '
                        'task 0 is the chief.')
    flags.DEFINE_enum('job_name', None, cluster.JOB_NAMES, 'This process\'s job in the '
                      'cluster: ps serves variables until stopped, worker trains.')
    flags.DEFINE_float('cluster_timeout_secs', 300.0, 'How long a worker waits for the '
                       'parameter servers to answer, and for the chief to initialise the '
                       'variables, before giving up.')
    flags.DEFINE_integer('virtual_gpus', 0, 'Split the first GPU into this many logical GPUs, '
                         'e.g. to try --num_clones placement on one GPU; ignored without a '
                         'GPU, 0 leaves it whole.')
    flags.DEFINE_integer('virtual_gpu_memory_mb', 2048, 'Memory of each logical GPU of '
                         '--virtual_gpus, in MiB.')
    _positive('cluster_timeout_secs')
    _at_least_zero('virtual_gpus')
    _positive('virtual_gpu_memory_mb')


def _define_optimizer_flags() -> None:
    flags.DEFINE_enum('optimizer', 'rmsprop', optimization.OPTIMIZERS, 'The optimizer.')
    flags.DEFINE_float('adadelta_rho', 0.95, 'The decay rate for adadelta.')
    flags.DEFINE_float('adagrad_initial_accumulator_value', 0.1,
                       'Starting value for the AdaGrad accumulators.')
    flags.DEFINE_float('adam_beta1', 0.9, 'Decay of the 1st moment estimates.')
    flags.DEFINE_float('adam_beta2', 0.999, 'Decay of the 2nd moment estimates.')
    flags.DEFINE_float('opt_epsilon', 1.0, 'Epsilon term for the optimizer.')
    flags.DEFINE_float('ftrl_learning_rate_power', -0.5, 'The learning rate power.')
    flags.DEFINE_float('ftrl_initial_accumulator_value', 0.1,
                       'Starting value for the FTRL accumulators.')
    flags.DEFINE_float('ftrl_l1', 0.0, 'The FTRL l1 regularization strength.')
    flags.DEFINE_float('ftrl_l2', 0.0, 'The FTRL l2 regularization strength.')
    flags.DEFINE_float('momentum', 0.9, 'The momentum of the momentum optimizer.')
    flags.DEFINE_float('rmsprop_momentum', 0.9, 'Momentum of RMSProp.')
    flags.DEFINE_float('rmsprop_decay', 0.9, 'Decay term of RMSProp.')
    flags.DEFINE_float('clip_gradient_norm', 0.0,
                       'Clip gradients to this global norm; 0 does not clip.')
    _at_least_zero('clip_gradient_norm')


def _define_learning_rate_flags() -> None:
    flags.DEFINE_enum('learning_rate_decay_type', 'exponential',
                      optimization.LEARNING_RATE_SCHEDULES, 'How the learning rate decays.')
    flags.DEFINE_float('learning_rate', 0.01, 'Initial learning rate.')
    flags.DEFINE_float('end_learning_rate', 0.0001, 'The minimal end learning rate of the '
                       'polynomial and cosine schedules.')
    flags.DEFINE_float('label_smoothing', 0.0, 'The amount of label smoothing.')
    flags.DEFINE_float('learning_rate_decay_factor', 0.94, 'Learning rate decay factor.')
    flags.DEFINE_float('num_epochs_per_decay', 2.0, 'Epochs after which the learning rate '
                       'decays.')
    flags.DEFINE_float('warmup_epochs', 0.0, 'Epochs of linear learning-rate warm-up.')
    _positive('learning_rate')
    _positive('num_epochs_per_decay')
    _at_least_zero('warmup_epochs')
    _at_least_zero('end_learning_rate')
    flags.register_validator('label_smoothing', lambda value: 0.0 <= value < 1.0,
                             message='--label_smoothing must be in [0, 1)')


def _define_fine_tuning_flags() -> None:
    flags.DEFINE_string('checkpoint_path', None, 'A checkpoint file or directory to '
                        'fine-tune from.')
    flags.DEFINE_string('checkpoint_exclude_scopes', None, 'Comma-separated scopes not '
                        'restored from --checkpoint_path.')
    flags.DEFINE_string('trainable_scopes', None, 'Comma-separated scopes to train; all if '
                        'unset.')
    flags.DEFINE_bool('ignore_missing_vars', False, 'Skip variables missing from the '
                      'checkpoint.')


def split_scopes(value: str | None) -> list[str]:
    """'a, b,' -> ['a', 'b']."""
    return [scope.strip() for scope in (value or '').split(',') if scope.strip()]


def define_eval_flags() -> None:
    """All flags of eval_image_classifier.py."""
    # The original evaluation script read batches of 100.
    define_dataset_flags(default_split='test', default_batch_size=100)
    define_model_flags()
    define_reader_flags()
    define_performance_flags()
    flags.DEFINE_string('checkpoint_path', '/tmp/tfmodel/', 'A checkpoint file, or a '
                        'directory whose latest checkpoint is evaluated.')
    flags.DEFINE_string('eval_dir', '/tmp/tfmodel/', 'Where metrics.json, the confusion '
                        'matrix and the event logs go.')
    flags.DEFINE_integer('max_num_batches', None, 'Evaluate at most this many batches; '
                         'all of the split if unset.')
    flags.DEFINE_integer('eval_image_size', None, 'Eval image size; the net\'s default if '
                         'unset.')
    flags.DEFINE_integer('eval_interval_secs', None, 'If set, keep evaluating each new '
                         'checkpoint in the --checkpoint_path directory, at most once per '
                         'this many seconds.')
    flags.DEFINE_float('timeout', None, 'With --eval_interval_secs: stop after waiting this '
                       'many seconds for a new checkpoint; wait forever if unset.')
    _positive('max_num_batches', allow_none=True)
    _positive('eval_image_size', allow_none=True)
    _at_least_zero('eval_interval_secs')
    _positive('timeout', allow_none=True)


def _define_inference_input_flags() -> None:
    """Flags describing what an exported or classifying net reads (export, classify)."""
    flags.DEFINE_integer('image_size', None, 'Input image size; the net\'s default if unset.')
    flags.DEFINE_integer('labels_offset', 0,
                         'Output i of the net is dataset label i + labels_offset: 1 for '
                         '1000-class nets on 1001-class ImageNet labels.')
    flags.DEFINE_string('preprocessing_name', None,
                        'The preprocessing to use; by default the net\'s own.')
    flags.DEFINE_bool('use_grayscale', False, 'The net reads grayscale images.')
    _positive('image_size', allow_none=True)
    _at_least_zero('labels_offset')


def define_export_flags() -> None:
    """All flags of export_inference_graph.py."""
    define_model_flags()
    _define_inference_input_flags()
    flags.DEFINE_bool('is_training', False, 'Export the training graph (dropout, batch-norm '
                      'statistics of the batch).')
    flags.DEFINE_integer('batch_size', None, 'Batch size of the input; any if unset.')
    flags.DEFINE_string('dataset_name', 'imagenet', 'The dataset whose classes the net '
                        'predicts.')
    flags.DEFINE_string('dataset_dir', None, 'The dataset directory; needed for converted '
                        'folders, optional for built-in datasets.')
    flags.DEFINE_string('output_file', None, 'Where to write the export: a file, or a '
                        'directory for --export_format=saved_model.')
    flags.DEFINE_bool('write_text_graphdef', False, 'Write the GraphDef as text.')
    flags.DEFINE_string('checkpoint_path', None, 'A checkpoint file or directory: its '
                        'weights are frozen into the export.')
    flags.DEFINE_enum('export_format', 'graphdef', ('graphdef', 'saved_model', 'tflite'),
                      'graphdef: a GraphDef, frozen when --checkpoint_path is set; '
                      'saved_model: a SavedModel directory; tflite: a TFLite model.')
    _positive('batch_size', allow_none=True)


def define_classify_flags() -> None:
    """All flags of classify_image.py."""
    define_model_flags()
    _define_inference_input_flags()
    flags.DEFINE_string('model_path', None, 'A frozen GraphDef (.pb/.pbtxt), a SavedModel '
                        'directory, a .tflite file, or a checkpoint file or directory.')
    flags.DEFINE_string('labels_file', None, 'Lines <id>:<name>; by default labels.txt '
                        'beside the model.')
    flags.DEFINE_integer('top_k', 5, 'How many of the most likely classes to print.')
    _positive('top_k')
