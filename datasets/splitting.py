"""Deterministic, stratified train/holdout splits and record orders.

Orders come from hashing each example's key with a seed rather than from
`random`, whose shuffling algorithms may change between Python releases.
Hashing also keeps a split stable as a folder grows: adding one image does
not move any other image to the other split.
"""

import hashlib
from collections.abc import Sequence


def stable_order(keys: Sequence[str], seed: str) -> list[int]:
    """Returns the indices of `keys` in a pseudo-random order fixed by `seed`.

    Args:
        keys: one distinct key per item (e.g. a relative file path).
        seed: anything that names the ordering; different seeds give
            independent orders.

    Returns:
        A permutation of range(len(keys)).
    """
    return sorted(range(len(keys)), key=lambda index: _digest(seed, keys[index]))


def holdout_count(num_examples: int, percentage: float) -> int:
    """Returns `percentage` percent of `num_examples`, rounded half up.

    Args:
        num_examples: how many examples there are.
        percentage: the share to hold out, in [0, 100).

    Returns:
        The number of examples to hold out.
    """
    return int(num_examples * percentage / 100 + 0.5)


def allocate_holdout(class_sizes: Sequence[int], total: int) -> list[int]:
    """Shares `total` holdout examples among classes in proportion to their size.

    Uses the largest-remainder method, so the counts add up to `total` exactly
    and each class gets its proportional share rounded up or down.

    Args:
        class_sizes: number of examples in each class.
        total: number of examples to hold out, at most sum(class_sizes).

    Returns:
        The holdout count for each class.

    Raises:
        ValueError: if `total` is negative or larger than the number of examples.
    """
    num_examples = sum(class_sizes)
    if not 0 <= total <= num_examples:
        raise ValueError('holdout size must be in [0, %d]; got %d' % (num_examples, total))
    if num_examples == 0:
        return [0] * len(class_sizes)
    counts = [size * total // num_examples for size in class_sizes]
    remainders = [size * total % num_examples for size in class_sizes]
    # Ties go to the earlier class so the result never depends on sort stability.
    by_remainder = sorted(range(len(class_sizes)), key=lambda index: (-remainders[index], index))
    for index in by_remainder[:total - sum(counts)]:
        counts[index] += 1
    return counts


def stratified_split(keys: Sequence[str], labels: Sequence[int], holdout_total: int,
                     seed: str) -> tuple[list[int], list[int]]:
    """Splits examples into a kept part and a holdout part, class by class.

    Args:
        keys: one distinct key per example.
        labels: the class id of each example.
        holdout_total: how many examples to hold out in all.
        seed: fixes which examples are held out.

    Returns:
        (kept indices, holdout indices), each in increasing order.

    Raises:
        ValueError: if `keys` and `labels` differ in length or `holdout_total`
            is out of range.
    """
    if len(keys) != len(labels):
        raise ValueError('keys and labels must have the same length; got %d and %d'
                         % (len(keys), len(labels)))
    class_ids = sorted(set(labels))
    members = {class_id: [] for class_id in class_ids}
    for index in stable_order(keys, seed):
        members[labels[index]].append(index)
    counts = allocate_holdout([len(members[class_id]) for class_id in class_ids],
                              holdout_total)
    holdout = set()
    for class_id, count in zip(class_ids, counts):
        holdout.update(members[class_id][:count])
    kept = [index for index in range(len(keys)) if index not in holdout]
    return kept, sorted(holdout)


def _digest(seed: str, key: str) -> bytes:
    # surrogateescape keeps file names that are not valid UTF-8 hashable.
    text = '%s\0%s' % (seed, key)
    return hashlib.sha256(text.encode('utf-8', 'surrogateescape')).digest()
