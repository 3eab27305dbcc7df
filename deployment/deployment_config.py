"""Where model_deploy puts clones, variables, inputs and the optimizer: `DeploymentConfig`.

Part of `deployment.model_deploy`'s public API (`model_deploy.DeploymentConfig`),
kept in its own file; see that module for the layout it describes.
"""

from collections.abc import Callable

import tensorflow.compat.v1 as tf

# Op types that hold a variable's value, and so are placed on a ps task:
# reference variables (v1 graphs) and resource variable handles (the default
# on TensorFlow 2).
_VARIABLE_OP_TYPES = frozenset(
    ['Variable', 'VariableV2', 'AutoReloadVariable', 'VarHandleOp'])


class _RoundRobinPsChooser:
    """A device function that deals variables out to ps tasks in turn."""

    def __init__(self, ps_device: str, num_tasks: int):
        self._ps_device = ps_device
        self._num_tasks = num_tasks
        self._next_task = 0

    def __call__(self, op: tf.Operation) -> str:
        """Returns the device for `op`: the next ps task if it is a variable.

        A variable that an inner `tf.device` already placed stays there; other
        ops (initial values, reads) are left to the enclosing device scopes,
        i.e. the clone's device.
        """
        if op.device or op.type not in _VARIABLE_OP_TYPES:
            return op.device
        task = self._next_task
        self._next_task = (task + 1) % self._num_tasks
        return '%s/task:%d/device:CPU:0' % (self._ps_device, task)


class DeploymentConfig:
    """Where the clones, inputs, optimizer and variables of a model go.

    With the defaults everything runs in this process: one clone on the
    first GPU, variables on the CPU. `num_ps_tasks > 0` describes a
    distributed job: this process is a task of `worker_job_name`, and the
    variables are spread over the tasks of `ps_job_name`.
    """

    def __init__(self,
                 num_clones: int = 1,
                 clone_on_cpu: bool = False,
                 replica_id: int = 0,
                 num_replicas: int = 1,
                 num_ps_tasks: int = 0,
                 worker_job_name: str = 'worker',
                 ps_job_name: str = 'ps'):
        """Checks and stores the deployment.

        Args:
          num_clones: copies of the model to build in this process (>= 1).
          clone_on_cpu: put every clone on the CPU instead of one GPU each.
          replica_id: index of this worker among the replicas, in
            [0, num_replicas). Device strings name the worker job only: the
            worker's own server fills in its task.
          num_replicas: worker processes training the same model (>= 1).
          num_ps_tasks: parameter server tasks holding the variables; 0 keeps
            them in this process.
          worker_job_name: job name of the workers (used with ps tasks).
          ps_job_name: job name of the parameter servers (used with ps tasks).

        Raises:
          ValueError: if a count is out of range, replica_id is not below
            num_replicas, several replicas have no ps task to share variables
            through, or a job name needed by the ps tasks is empty.
        """
        _check_at_least('num_clones', num_clones, 1)
        _check_at_least('num_replicas', num_replicas, 1)
        _check_at_least('num_ps_tasks', num_ps_tasks, 0)
        if not 0 <= replica_id < num_replicas:
            raise ValueError(
                'replica_id must be in [0, num_replicas); got replica_id=%d '
                'with num_replicas=%d' % (replica_id, num_replicas))
        if num_replicas > 1 and num_ps_tasks == 0:
            raise ValueError(
                'num_ps_tasks must be > 0 when num_replicas > 1 (the replicas '
                'share variables through the ps tasks); got num_ps_tasks=0 '
                'with num_replicas=%d' % num_replicas)
        if num_ps_tasks > 0:
            _check_job_name('worker_job_name', worker_job_name)
            _check_job_name('ps_job_name', ps_job_name)
        self._num_clones = num_clones
        self._clone_on_cpu = clone_on_cpu
        self._replica_id = replica_id
        self._num_replicas = num_replicas
        self._num_ps_tasks = num_ps_tasks
        # Without ps tasks the job is local and devices carry no job name.
        self._worker_device = '/job:' + worker_job_name if num_ps_tasks else ''
        self._ps_device = '/job:' + ps_job_name if num_ps_tasks else ''

    @property
    def num_clones(self) -> int:
        return self._num_clones

    @property
    def clone_on_cpu(self) -> bool:
        return self._clone_on_cpu

    @property
    def replica_id(self) -> int:
        return self._replica_id

    @property
    def num_replicas(self) -> int:
        return self._num_replicas

    @property
    def num_ps_tasks(self) -> int:
        return self._num_ps_tasks

    @property
    def worker_device(self) -> str:
        """'/job:<worker_job_name>' with ps tasks, else ''."""
        return self._worker_device

    @property
    def ps_device(self) -> str:
        """'/job:<ps_job_name>' with ps tasks, else ''."""
        return self._ps_device

    def clone_device(self, clone_index: int) -> str:
        """Returns the device of clone `clone_index`.

        Args:
          clone_index: which clone, in [0, num_clones).

        Returns:
          '/device:CPU:0' with `clone_on_cpu`, else '/device:GPU:<clone_index>',
          prefixed by the worker job when there are ps tasks.

        Raises:
          ValueError: if clone_index is out of range.
        """
        self._check_clone_index(clone_index)
        if self._clone_on_cpu:
            return self._worker_device + '/device:CPU:0'
        return self._worker_device + '/device:GPU:%d' % clone_index

    def clone_scope(self, clone_index: int) -> str:
        """Returns the name scope of clone `clone_index`.

        Args:
          clone_index: which clone, in [0, num_clones).

        Returns:
          'clone_<clone_index>' with several clones; '' for a lone clone, so
          a single-clone graph has the same op names as a plain one.

        Raises:
          ValueError: if clone_index is out of range.
        """
        self._check_clone_index(clone_index)
        if self._num_clones == 1:
            return ''
        return 'clone_%d' % clone_index

    def optimizer_device(self) -> str:
        """Returns the device for the optimizer: this worker's CPU."""
        return self._worker_device + '/device:CPU:0'

    def inputs_device(self) -> str:
        """Returns the device for the input pipeline: this worker's CPU."""
        return self._worker_device + '/device:CPU:0'

    def variables_device(self) -> str | Callable[[tf.Operation], str]:
        """Returns the device (or device function) for the variables.

        Returns:
          '/device:CPU:0' without ps tasks. With ps tasks, a device function
          for `tf.device` that puts each new variable on the next ps task in
          turn ('/job:ps/task:0/device:CPU:0', task:1, ..., back to task:0);
          each call starts a new round at task 0.
        """
        if not self._num_ps_tasks:
            return '/device:CPU:0'
        return _RoundRobinPsChooser(self._ps_device, self._num_ps_tasks)

    def caching_device(self) -> Callable[[tf.Operation], str] | None:
        """Returns the caching device for `tf.variable_scope`, or None.

        Returns:
          With ps tasks, a function that caches each variable on the device
          of the op reading it, so a worker fetches a remote variable once
          per step rather than once per use; None (no caching) otherwise.
        """
        if not self._num_ps_tasks:
            return None
        return lambda op: op.device

    def _check_clone_index(self, clone_index: int) -> None:
        if not 0 <= clone_index < self._num_clones:
            raise ValueError(
                'clone_index must be in [0, num_clones); got clone_index=%d '
                'with num_clones=%d' % (clone_index, self._num_clones))


def _check_at_least(name: str, value: int, minimum: int) -> None:
    """Raises ValueError naming `name` if `value` is below `minimum`."""
    if value < minimum:
        raise ValueError('%s must be >= %d; got %d' % (name, minimum, value))


def _check_job_name(name: str, value: str) -> None:
    """Raises ValueError naming `name` if the job name `value` is empty."""
    if not value:
        raise ValueError('%s must be a non-empty job name when num_ps_tasks > 0; '
                         'got %r' % (name, value))
