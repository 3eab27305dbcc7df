"""tools/fault_injection.py: SIGKILLed conversions and training runs end complete after a rerun."""

import importlib.util
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, 'tools', 'fault_injection.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('fault_injection', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_tool(*args, timeout=600):
    return subprocess.run([sys.executable, TOOL, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_killed_conversions_and_training_runs_end_complete_and_correct(tmp_path):
    report_path = tmp_path / 'report.json'
    # One kill of each at seed 0 (the full 20 + 20 are a run of the tool, in the README).
    result = _run_tool('--runs=1', '--seed=0', '--target=both', '--train_steps=40',
                       '--work_dir=%s' % (tmp_path / 'work'), '--report=%s' % report_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report['passed'] is True
    killed = 0
    for target in ('converter', 'trainer'):
        counts = report['targets'][target]['counts']
        assert counts['runs'] == 1 and counts['failures'] == 0, counts
        assert counts['correct_after_rerun'] == 1, counts
        assert counts['killed_before_completion'] + counts['completed_before_kill'] == 1
        killed += counts['killed_before_completion']
        for run in report['targets'][target]['runs']:
            assert run['problems'] == [], run
    assert killed >= 1, report
    # Several shards, and the reference is what the rerun of each run was compared with.
    files = report['targets']['converter']['reference']['files']
    assert sum(name.endswith('.tfrecord') for name in files) >= 4, sorted(files)
    assert {'dataset_info.json', 'labels.txt', 'conversion_report.json'} <= set(files)
    for run in report['targets']['trainer']['runs']:
        assert run['facts']['final_step'] == 40, run
    assert 'converter' in result.stdout and 'trainer' in result.stdout


def test_a_differing_byte_or_a_leftover_file_is_found(tmp_path):
    tool = _load_tool()
    reference, copy = tmp_path / 'reference', tmp_path / 'copy'
    for directory in (reference, copy):
        directory.mkdir()
        (directory / 'labels.txt').write_text('0:a\n1:b\n')
        (directory / 'dataset_info.json').write_text(json.dumps({'name': 'x', 'splits': 1}))
        (directory / tool.LOCK_FILENAME).write_text(str(directory))
    digests = tool.file_digests(str(reference))
    assert tool.differences(str(copy), str(reference), digests) == []

    (copy / 'dataset_info.json').write_text(json.dumps({'name': 'x', 'splits': 2}))
    (copy / '.labels.txt.tmp-1234abcd').write_text('0:a\n')
    (copy / 'labels.txt').unlink()
    (copy / tool.LOCK_FILENAME).unlink()
    assert tool.differences(str(copy), str(reference), digests) == [
        'missing %s, labels.txt' % tool.LOCK_FILENAME, 'extra .labels.txt.tmp-1234abcd',
        'dataset_info.json differs (keys splits)']
    # A killed conversion may leave the lock file, or not: it can be ignored.
    assert tool.differences(str(copy), str(reference), digests,
                            frozenset(tool.VARYING_FILES))[0] == 'missing labels.txt'


def test_work_lost_beyond_one_save_interval_is_measured(tmp_path):
    tool = _load_tool()
    checkpoint = tool.Checkpoint(str(tmp_path / 'model.ckpt-20'), 20, written_at=100.0)
    records = [{'step': step, 'wall_time': 100.0 + 0.1 * (step - 20)} for step in range(15, 61)]
    lost = tool.lost_work(records, checkpoint)
    assert lost['last_step'] == 60 and lost['lost_steps'] == 40
    assert abs(lost['lost_secs'] - 4.0) < 1e-6
    assert abs(lost['allowed_extra_secs'] - 0.1) < 1e-6
    assert tool.lost_work([], None)['lost_secs'] == 0.0


def test_a_work_dir_in_use_is_refused_and_left_as_it_is(tmp_path):
    work_dir = tmp_path / 'mine'
    work_dir.mkdir()
    (work_dir / 'notes.txt').write_text('keep me')
    result = _run_tool('--runs=1', '--work_dir=%s' % work_dir, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ('error: --work_dir %s must be a new or empty directory: the '
                                     'runs write datasets and train dirs there' % work_dir)
    assert os.listdir(work_dir) == ['notes.txt']


def test_a_report_path_holding_another_file_is_refused_and_kept(tmp_path):
    report = tmp_path / 'results.json'
    report.write_text('{"mine": true}\n')
    result = _run_tool('--runs=1', '--work_dir=%s' % (tmp_path / 'work'),
                       '--report=%s' % report, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith('error: %s exists and is not a fault-injection report' % report)
    assert len(result.stderr.strip().splitlines()) == 1
    assert report.read_text() == '{"mine": true}\n'
    assert not (tmp_path / 'work').exists()


def test_bad_flag_values_are_refused(tmp_path):
    result = _run_tool('--runs=0', timeout=60)
    assert result.returncode == 2
    assert "argument --runs: must be a positive integer; got '0'" in result.stderr
