"""Starts a whole training cluster on this machine, to try distributed training out.

    python launch_local_cluster.py --num_ps=1 --num_workers=2 -- \\
        --dataset_name=digits --dataset_dir=/tmp/digits --model_name=lenet \\
        --train_dir=/tmp/lenet --max_number_of_steps=1000 [--sync_replicas]

The parameter servers and workers are train_image_classifier.py processes on
free ports of 127.0.0.1; every flag after `--` goes to each worker. Each task's
command is printed first: run the same commands on several machines, with
their host names, for a real cluster. Their output is printed with the task's
name in front. Ctrl-C or SIGTERM is passed on to the workers, which save and
stop; if a worker fails, the others are stopped. The parameter servers are
stopped once every worker has exited. The exit status is 0 when every worker
exited 0, else 1.
"""

import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from slim_classifier.cli import flags, runner
from slim_classifier.runtime.options import POSITIVE, option, validate


@dataclasses.dataclass(kw_only=True)
class LaunchOptions:
    num_ps: int = option(1, 'Parameter server tasks to start.', 'distribution', check=POSITIVE)
    num_workers: int = option(2, 'Worker tasks to start; worker 0 is the chief.',
                              'distribution', check=POSITIVE)

    def __post_init__(self):
        validate(self)


flags.define_flags(LaunchOptions)

HOST = '127.0.0.1'
# The launcher sets these itself; a worker given them too would not be in this cluster.
CLUSTER_FLAGS = ('ps_hosts', 'worker_hosts', 'job_name', 'task', 'master', 'num_ps_tasks',
                 'worker_replicas')
_STOP_WAIT_SECS = 120  # how long a stopped task may take to save and exit


def free_ports(count: int) -> list[int]:
    """`count` distinct ports of HOST that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def check_worker_args(worker_args: list[str]) -> None:
    """Refuses worker flags that the launcher sets itself.

    Raises:
      ValueError: naming the first such flag.
    """
    for arg in worker_args:
        name = arg.lstrip('-').split('=', 1)[0]
        if arg.startswith('-') and name in CLUSTER_FLAGS:
            raise ValueError('--%s is set by the launcher for each task; leave it out of the '
                             'worker flags' % name)


def task_commands(num_ps: int, num_workers: int,
                  worker_args: list[str]) -> list[tuple[str, list[str]]]:
    """(task name, command) of every ps task, then of every worker, on free ports."""
    ports = free_ports(num_ps + num_workers)
    ps_hosts = ','.join('%s:%d' % (HOST, port) for port in ports[:num_ps])
    worker_hosts = ','.join('%s:%d' % (HOST, port) for port in ports[num_ps:])
    trainer = [sys.executable, '-m', 'train_image_classifier', '--ps_hosts=' + ps_hosts,
               '--worker_hosts=' + worker_hosts]
    tasks = [('ps %d' % index, trainer + ['--job_name=ps', '--task=%d' % index])
             for index in range(num_ps)]
    tasks += [('worker %d' % index,
               trainer + ['--job_name=worker', '--task=%d' % index] + worker_args)
              for index in range(num_workers)]
    return tasks


class _Task:
    """One task's process, its output copied to ours with the task's name in front."""

    _print_lock = threading.Lock()

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        self.name = name
        # A session of its own: Ctrl-C in the terminal reaches the launcher only, which
        # stops the workers before the parameter servers they save through.
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self._copier = threading.Thread(target=self._copy_output, daemon=True)
        self._copier.start()

    def _copy_output(self):
        for line in self.process.stdout:
            with self._print_lock:
                print('[%s] %s' % (self.name, line.rstrip('\n')), flush=True)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """Waits for the task to exit (killing it after _STOP_WAIT_SECS); its exit code."""
        try:
            self.process.wait(timeout=_STOP_WAIT_SECS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._copier.join(timeout=5)
        return self.process.returncode


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [here, env.get('PYTHONPATH')]))
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's errors only
    env.pop('TF_CONFIG', None)  # the flags describe the cluster
    return env


def launch(num_ps: int, num_workers: int, worker_args: list[str]) -> int:
    """Runs the cluster until every worker has exited; 0 if all exited 0, else 1.

    Raises:
      ValueError: if `worker_args` holds a flag the launcher sets.
    """
    check_worker_args(worker_args)
    commands = task_commands(num_ps, num_workers, worker_args)
    for name, command in commands:
        print('%s: %s' % (name, shlex.join(command)), flush=True)
    stopping = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    env = _child_env()
    tasks = [_Task(name, command, env) for name, command in commands]
    ps_tasks, workers = tasks[:num_ps], tasks[num_ps:]
    try:
        _wait_for_workers(workers, stopping)
    finally:
        for worker in workers:
            worker.stop()
        codes = [worker.wait() for worker in workers]
        for task in ps_tasks:
            task.stop()
        for task in ps_tasks:
            task.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for worker, code in zip(workers, codes):
        print('%s exited %d' % (worker.name, code), flush=True)
    return 0 if all(code == 0 for code in codes) else 1


def _wait_for_workers(workers: list[_Task], stopping: threading.Event) -> None:
    """Returns when every worker has exited, one failed, or a stop was asked for."""
    while not stopping.is_set():
        codes = [worker.process.poll() for worker in workers]
        if all(code is not None for code in codes):
            return
        failed = [worker.name for worker, code in zip(workers, codes) if code]
        if failed:
            print('%s failed: stopping the other workers' % failed[0], flush=True)
            return
        time.sleep(0.2)
    print('stop requested: the workers save and stop', flush=True)


def main(argv: list[str]) -> int:
    options = LaunchOptions(**flags.config_values(LaunchOptions))
    return launch(options.num_ps, options.num_workers, argv[1:])


def run():
    runner.run_command(main, __doc__, (LaunchOptions,))


if __name__ == '__main__':
    run()
