"""Seeds and stateless random draws: every random number of the augmentation and the input
pipelines comes from here.

Two levels: Python ints (`derive_seed`, for `tf.data` shuffles and seed streams of one
input pipeline) and `[2]` integer seed tensors (`seed_tensor`, `split_seed`), from which
each op draws per-image values with TensorFlow's stateless random ops (`uniform`, `coin`).
Stateless draws are deterministic given the seed, need no random-generator state (so they
run on a TPU host and inside `tf.distribute` input functions) and vectorise over a batch.

For exact resumes, `epoch_seed` and `step_seeds` make the draws a pure function of
(seed, epoch, step) (hashed with the stateless Philox generator; `stateless_fold_in` is not
used: it keeps only 32 bits of the folded value), so an input pipeline rebuilt at any epoch
and step draws what an uninterrupted one drew.
"""

import tensorflow as tf

INT32_MAX = 2**31 - 1


def seed_tensor(seed):
    """Any accepted seed → a `[2]` integer seed tensor for stateless ops.

    Args:
        seed: an int, a `[2]` integer tensor (or list), or None for a fresh random seed on
            every call (not reproducible).

    Returns:
        A `[2]` integer tensor (int64 from an int, int32 from None, else the input's dtype).
    """
    if seed is None:  # stateful: differs on every call, not reproducible.
        return tf.random.uniform([2], maxval=INT32_MAX, dtype=tf.int32)
    if isinstance(seed, int):
        return tf.constant([seed % INT32_MAX, 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise ValueError(
            f"seed must be an int or an integer tensor of shape [2], got {seed.dtype.name} {seed.shape}"
        )
    return seed


def split_seed(seed, n):
    """`n` independent `[2]` seeds derived from one (`stateless_split`), as a list."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def uniform(seed, shape, low=0.0, high=1.0):
    """float32 draws from U[low, high) of `shape`, deterministic given the `[2]` seed."""
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high, dtype=tf.float32)


def coin(seed, n, p):
    """`n` independent booleans, each True with probability `p`."""
    return uniform(seed, [n]) < p


def derive_seed(seed, *parts):
    """A Python-int seed for one use (`parts`, e.g. input pipeline and stream number) of `seed`.

    Args:
        seed: an int, or None (then None: unseeded).
        *parts: ints naming the use; different parts give unrelated seeds.

    Returns:
        An int in [0, 2**62), or None.
    """
    if seed is None:
        return None
    value = int(seed)
    for part in parts:
        value = (value * 1_000_003 + int(part) + 1) % (2**62)
    return value


def seed_stream(seed):
    """An endless `tf.data.Dataset` of `[2]` int64 seeds, one per element to zip with.

    Deterministic given `seed` (an int, or None: unseeded), and a new sequence on every
    iteration (epoch), so augmentations change every step and every epoch.
    """
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)


def _hash_seed(seed):
    """A `[2]` int64 seed hashed (Philox) from a `[2]` int64 seed: unrelated streams for
    seeds that differ by one (raw seeds `[k, c]` and `[k, c + 1]` give overlapping streams)."""
    return tf.random.stateless_uniform([2], seed, minval=None, maxval=None, dtype=tf.int64)


def epoch_seed(seed, epoch):
    """The `[2]` int64 seed of one epoch, hashed from (seed, epoch).

    Args:
        seed: an int.
        epoch: an int or an integer scalar tensor (e.g. the epoch of `Dataset.range`); all
            64 bits count.

    Returns:
        A `[2]` int64 tensor; the same (seed, epoch) always gives the same value.

    Example:
    ```python
    shuffle_seed = epoch_seed(7, 3)[0] % INT32_MAX  # for Dataset.shuffle(seed=...)
    ```
    """
    raw = tf.stack([tf.constant(int(seed) % INT32_MAX, tf.int64), tf.cast(epoch, tf.int64)])
    return _hash_seed(raw)


def step_seeds(seed, epoch):
    """An endless `tf.data.Dataset` of `[2]` int64 seeds, element `step` hashed from
    (seed, epoch, step): a pure function of the three.

    Unlike `seed_stream`, the draws do not depend on how often a dataset was iterated:
    rebuilding the stream for the same epoch repeats them exactly.

    Args:
        seed: an int.
        epoch: an int or an integer scalar tensor.

    Returns:
        A `tf.data.Dataset` of `[2]` int64 tensors, to zip with the batches (or images).
    """
    base = epoch_seed(seed, epoch)
    return tf.data.Dataset.counter().map(lambda step: _hash_seed(tf.stack([base[0], base[1] + step])))
