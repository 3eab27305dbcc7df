"""Where a training process stands in a cluster, and the devices it sees.

Training on several machines uses between-graph replication on TensorFlow's
gRPC runtime: every worker builds the whole training graph, the variables live
on the parameter server (ps) tasks, and the ps tasks do nothing but serve them.
Worker 0 (or the task of a `chief` job, given through TF_CONFIG) is the chief:
it alone initialises or restores the variables and writes checkpoints and
summaries.

A process learns its place from flags,

    --ps_hosts=ps0:2222,ps1:2222 --worker_hosts=w0:2222,w1:2222 --job_name=worker --task=1

or, when those are unset, from the TF_CONFIG environment variable,

    {"cluster": {"ps": ["ps0:2222"], "worker": ["w0:2222", "w1:2222"]},
     "task": {"type": "worker", "index": 1}}

Every wait on another task is bounded: a parameter server that cannot be
reached, or whose port is held by a program that does not speak TensorFlow's
gRPC, fails with a one-line `ClusterError` naming its address.
"""

import dataclasses
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping

import tensorflow.compat.v1 as tf

from slim_classifier.errors import UserError
from slim_classifier.training.config import JOB_NAMES

log = logging.getLogger('cluster')

PS_JOB = 'ps'
WORKER_JOB = 'worker'
CHIEF_JOB = 'chief'  # TF_CONFIG only: a chief task apart from the workers
_TF_CONFIG_TYPES = (CHIEF_JOB, WORKER_JOB, PS_JOB)
_RETRY_SECS = 0.5  # pause between two attempts to reach a parameter server
_PROBE_SECS = 2.0  # how long a listener has to answer the HTTP/2 greeting
# What a gRPC client sends first: the HTTP/2 preface and an empty SETTINGS frame
# (length 0, type 4, no flags, stream 0). A gRPC server answers with a frame of
# its own, SETTINGS first; anything else (silence, an HTTP/1 reply) is not one.
_HTTP2_GREETING = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_FRAME_HEADER_BYTES = 9
_SETTINGS_FRAME = 4


class ClusterError(UserError):
    """A task that cannot be started or reached; the message is one line."""


@dataclasses.dataclass(frozen=True)
class ClusterRole:
    """This process's task in a cluster.

    Attributes:
      jobs: job name -> the 'host:port' of each of its tasks, in task order;
        'ps' and 'worker', and 'chief' when TF_CONFIG names one.
      job_name: this task's job.
      task_index: this task's index in its job.
    """
    jobs: Mapping[str, tuple[str, ...]]
    job_name: str
    task_index: int

    @property
    def address(self) -> str:
        return self.jobs[self.job_name][self.task_index]

    @property
    def is_ps(self) -> bool:
        return self.job_name == PS_JOB

    @property
    def is_chief(self) -> bool:
        """The chief task, or worker 0 when the cluster has no chief job."""
        if CHIEF_JOB in self.jobs:
            return self.job_name == CHIEF_JOB
        return self.job_name == WORKER_JOB and self.task_index == 0

    @property
    def ps_addresses(self) -> tuple[str, ...]:
        return self.jobs[PS_JOB]

    @property
    def num_ps_tasks(self) -> int:
        return len(self.jobs[PS_JOB])

    @property
    def num_workers(self) -> int:
        """The training replicas: the chief task, if any, and the workers."""
        return len(self.jobs.get(CHIEF_JOB, ())) + len(self.jobs.get(WORKER_JOB, ()))

    @property
    def replica_id(self) -> int:
        """This worker's index among the replicas; the chief is replica 0."""
        if self.job_name == WORKER_JOB:
            return len(self.jobs.get(CHIEF_JOB, ())) + self.task_index
        return 0

    @property
    def chief_address(self) -> str:
        if CHIEF_JOB in self.jobs:
            return self.jobs[CHIEF_JOB][0]
        return self.jobs[WORKER_JOB][0]

    def describe(self) -> str:
        """E.g. 'worker 1 of 2 at 127.0.0.1:2223'."""
        return '%s %d of %d at %s' % (self.job_name, self.task_index,
                                      len(self.jobs[self.job_name]), self.address)

    def cluster_spec(self) -> tf.train.ClusterSpec:
        return tf.train.ClusterSpec({job: list(tasks) for job, tasks in self.jobs.items()})


def parse_hosts(flag_name: str, value: str) -> tuple[str, ...]:
    """'h1:2222, h2:2222' -> ('h1:2222', 'h2:2222').

    Raises:
      ValueError: if the list is empty or an entry is not host:port with a port
        in [1, 65535].
    """
    hosts = tuple(host.strip() for host in value.split(',') if host.strip())
    if not hosts:
        raise ValueError('--%s must list host:port entries separated by commas; got %r'
                         % (flag_name, value))
    for host in hosts:
        _check_address(host, '--' + flag_name)
    return hosts


def _check_address(address: str, source: str) -> None:
    host, _, port = address.rpartition(':')
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('%s entries must be host:port with a port in [1, 65535]; got %r'
                         % (source, address))


def role_from_flags(ps_hosts: str, worker_hosts: str, job_name: str | None,
                    task: int) -> ClusterRole:
    """The task that --ps_hosts, --worker_hosts, --job_name and --task describe.

    Raises:
      ValueError: if a flag is missing or malformed, or --task is not a task of
        the job.
    """
    if not ps_hosts or not worker_hosts:
        raise ValueError('a cluster needs both --ps_hosts and --worker_hosts; got '
                         '--ps_hosts=%r --worker_hosts=%r' % (ps_hosts or '', worker_hosts or ''))
    if job_name not in JOB_NAMES:
        raise ValueError('--job_name must be one of %s with --ps_hosts and --worker_hosts; '
                         'got %r' % (', '.join(JOB_NAMES), job_name))
    jobs = {PS_JOB: parse_hosts('ps_hosts', ps_hosts),
            WORKER_JOB: parse_hosts('worker_hosts', worker_hosts)}
    _check_task(jobs, job_name, task, '--task')
    return ClusterRole(jobs=jobs, job_name=job_name, task_index=task)


def role_from_tf_config(text: str) -> ClusterRole | None:
    """The task that a TF_CONFIG value describes; None if it names no cluster.

    Raises:
      ValueError: if TF_CONFIG is not JSON, names no ps or worker job, has a
        malformed address, or its task is missing, of another type, or out of
        range.
    """
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError('TF_CONFIG must be JSON; %s in %r' % (error.msg, text)) from None
    if not isinstance(parsed, dict):
        raise ValueError('TF_CONFIG must be a JSON object; got %r' % text)
    cluster = parsed.get('cluster') or {}
    if not cluster:
        return None
    unknown = sorted(set(cluster) - set(_TF_CONFIG_TYPES))
    if unknown:
        raise ValueError("TF_CONFIG's cluster may hold the jobs %s; got %s"
                         % (', '.join(_TF_CONFIG_TYPES), ', '.join(unknown)))
    if not cluster.get(PS_JOB) or not (cluster.get(WORKER_JOB) or cluster.get(CHIEF_JOB)):
        raise ValueError("TF_CONFIG's cluster needs a 'ps' job and a 'worker' or 'chief' job; "
                         'got %s' % ', '.join(sorted(cluster)))
    jobs = {job: tuple(cluster[job]) for job in _TF_CONFIG_TYPES if cluster.get(job)}
    for tasks in jobs.values():
        for address in tasks:
            _check_address(str(address), 'TF_CONFIG')
    task = parsed.get('task') or {}
    task_type, task_index = task.get('type'), task.get('index', 0)
    if task_type not in jobs:
        raise ValueError("TF_CONFIG's task type must be one of its jobs (%s); got %r"
                         % (', '.join(jobs), task_type))
    _check_task(jobs, task_type, task_index, "TF_CONFIG's task index")
    return ClusterRole(jobs=jobs, job_name=task_type, task_index=task_index)


def _check_task(jobs, job_name, task, source):
    count = len(jobs[job_name])
    if not isinstance(task, int) or not 0 <= task < count:
        raise ValueError('%s must be in [0, %d): the %s job has %d task(s); got %r'
                         % (source, count, job_name, count, task))


def resolve_role(ps_hosts: str | None, worker_hosts: str | None, job_name: str | None,
                 task: int, tf_config: str | None) -> ClusterRole | None:
    """This process's task: from the flags if given, else from TF_CONFIG, else None.

    Args:
      ps_hosts: the --ps_hosts value, or None.
      worker_hosts: the --worker_hosts value, or None.
      job_name: the --job_name value, or None.
      task: the --task value.
      tf_config: the TF_CONFIG environment variable, or None.

    Returns:
      The ClusterRole, or None for training in this process alone.

    Raises:
      ValueError: for a malformed or incomplete cluster description.
    """
    if ps_hosts or worker_hosts:
        return role_from_flags(ps_hosts, worker_hosts, job_name, task)
    if job_name:
        raise ValueError('--job_name=%s needs --ps_hosts and --worker_hosts (TF_CONFIG names '
                         'its own task)' % job_name)
    if tf_config and tf_config.strip():
        return role_from_tf_config(tf_config)
    return None


def check_replica_counts(role: ClusterRole | None, num_ps_tasks: int | None,
                         worker_replicas: int | None) -> None:
    """Checks the explicitly given --num_ps_tasks and --worker_replicas against the cluster.

    Both are derived from the cluster (0 and 1 without one); None means the
    flag was not given.

    Raises:
      ValueError: if a given count disagrees with the cluster's.
    """
    derived = {'num_ps_tasks': role.num_ps_tasks if role else 0,
               'worker_replicas': role.num_workers if role else 1}
    for name, given in (('num_ps_tasks', num_ps_tasks), ('worker_replicas', worker_replicas)):
        if given is None or given == derived[name]:
            continue
        if role is None:
            raise ValueError('--%s=%d needs a cluster: give --ps_hosts and --worker_hosts, or '
                             'TF_CONFIG' % (name, given))
        raise ValueError('--%s=%d disagrees with the cluster, which has %d; leave it unset, it '
                         'is derived from the cluster' % (name, given, derived[name]))


def worker_session_config(role: ClusterRole, base: tf.ConfigProto) -> tf.ConfigProto:
    """`base` with device filters that let this worker see only the ps tasks and itself.

    Without them, a session would wait for every worker of the cluster to be
    up, and one worker's failure would stall the others.
    """
    config = tf.ConfigProto()
    config.CopyFrom(base)
    del config.device_filters[:]
    config.device_filters.extend(['/job:%s' % PS_JOB,
                                  '/job:%s/task:%d' % (role.job_name, role.task_index)])
    return config


def split_first_gpu(base: tf.ConfigProto, num_logical: int, memory_mb: int) -> tf.ConfigProto:
    """`base` with the first GPU split into `num_logical` GPUs of `memory_mb` MiB each.

    It lets `--num_clones` place one clone per GPU on a machine with one GPU.
    The other GPUs are hidden, as TensorFlow splits either all visible GPUs or
    none.

    Raises:
      ValueError: if num_logical or memory_mb is not positive.
    """
    if num_logical < 1 or memory_mb < 1:
        raise ValueError('virtual GPUs need a count and a memory size > 0; got %d GPUs of '
                         '%d MiB' % (num_logical, memory_mb))
    config = tf.ConfigProto()
    config.CopyFrom(base)
    config.gpu_options.visible_device_list = '0'
    del config.gpu_options.experimental.virtual_devices[:]
    config.gpu_options.experimental.virtual_devices.add(
        memory_limit_mb=[float(memory_mb)] * num_logical)
    return config


def start_server(role: ClusterRole, config: tf.ConfigProto) -> tf.distribute.Server:
    """Starts this task's gRPC server.

    It also makes TensorFlow's remote calls fail fast (unless GRPC_FAIL_FAST is
    already set): by default a call to a parameter server that died is retried
    without end, so a worker would hang, even while closing its session,
    instead of reporting the loss.

    Raises:
      ClusterError: if the server cannot start, e.g. its port is taken.
    """
    os.environ.setdefault('GRPC_FAIL_FAST', 'true')
    try:
        return tf.distribute.Server(role.cluster_spec(), job_name=role.job_name,
                                    task_index=role.task_index, config=config, start=True)
    except (tf.errors.OpError, RuntimeError) as error:
        message = getattr(error, 'message', str(error)).strip().splitlines()
        raise ClusterError('could not start the %s server at %s: %s'
                           % (role.job_name, role.address, _why_not_started(
                               role.address, message[0] if message else type(error).__name__))
                           ) from None


def _why_not_started(address: str, error_line: str) -> str:
    """What holds the port of `address`, told by probing it, else TensorFlow's error."""
    listening, speaks_grpc = _probe(address, _PROBE_SECS)
    if speaks_grpc:
        return ('a TensorFlow server already serves there (is this task running already?); '
                'stop it, or choose another port')
    if listening:
        return ('the port is held by a program that is not a TensorFlow server; stop it, or '
                'choose another port')
    return '%s (is the port taken?)' % error_line


def serve(role: ClusterRole) -> None:
    """Runs this parameter server until SIGINT or SIGTERM.

    Raises:
      ClusterError: if the server cannot start.
    """
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = start_server(role, tf.ConfigProto())
        log.info('%s is serving (%s); stop it with Ctrl-C or SIGTERM', role.describe(),
                 server.target)
        while not stop.wait(1.0):
            pass
        log.info('%s stopped', role.describe())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_for_parameter_servers(role: ClusterRole, timeout_secs: float) -> None:
    """Waits until every ps task answers as a gRPC server.

    TensorFlow itself would wait for an absent ps without end, and for a port
    held by another program (one that accepts connections and says nothing,
    or answers HTTP) until its own handshake times out, as a traceback; this
    bounds the wait and names the address.

    Raises:
      ClusterError: naming the first ps task not answering within `timeout_secs`,
        and saying whether nothing listens there or a program that is not a
        TensorFlow server does.
    """
    deadline = time.monotonic() + timeout_secs
    for task, address in enumerate(role.ps_addresses):
        logged = False
        while True:
            listening, speaks_grpc = _probe(address, deadline - time.monotonic())
            if speaks_grpc:
                break
            if time.monotonic() >= deadline:
                if listening:
                    raise ClusterError(
                        'the parameter server address %s (ps %d) is held by a program that is '
                        'not a TensorFlow server: it accepts connections but does not answer '
                        "TensorFlow's gRPC; stop it, or give the ps another port in --ps_hosts "
                        'or TF_CONFIG' % (address, task))
                raise ClusterError(
                    'could not reach the parameter server at %s within %g s; start it '
                    '(--job_name=ps), check --ps_hosts or TF_CONFIG, or raise '
                    '--cluster_timeout_secs' % (address, timeout_secs))
            if not logged:
                log.info('waiting for the parameter server at %s (up to %g s)', address,
                         timeout_secs)
                logged = True
            time.sleep(min(_RETRY_SECS, max(0.0, deadline - time.monotonic())))


def explain_lost_cluster(role: ClusterRole, error_message: str) -> str:
    """Says which parameter servers no longer answer, else the error's first line.

    A server answers if it speaks gRPC: a dead one's port, taken since by
    some other listener, still counts as silent.
    """
    silent = ['ps %d at %s' % (task, address) for task, address in enumerate(role.ps_addresses)
              if not _probe(address, 1.0)[1]]
    if silent:
        return 'the parameter server %s does not answer' % ', '.join(silent)
    return error_message.strip().splitlines()[0]


def _connect(address: str, timeout_secs: float) -> socket.socket:
    host, _, port = address.rpartition(':')
    return socket.create_connection((host.strip('[]'), int(port)),
                                    timeout=max(0.1, min(timeout_secs, 5.0)))


def _probe(address: str, timeout_secs: float) -> tuple[bool, bool]:
    """(whether `address` accepts connections, whether it answers as a gRPC server)."""
    try:
        connection = _connect(address, timeout_secs)
    except OSError:
        return False, False
    with connection:
        connection.settimeout(max(0.1, min(timeout_secs, _PROBE_SECS)))
        try:
            connection.sendall(_HTTP2_GREETING)
            header = b''
            while len(header) < _FRAME_HEADER_BYTES:
                received = connection.recv(_FRAME_HEADER_BYTES - len(header))
                if not received:
                    break
                header += received
        except OSError:
            return True, False
    return True, len(header) == _FRAME_HEADER_BYTES and header[3] == _SETTINGS_FRAME
