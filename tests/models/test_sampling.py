import numpy as np
import torch

from models.sampling import AugmentConfig, PatchSampler, TrainingPair, augment_patch


def _training_pair(size=64, change=(10, 14)):
    before = np.zeros((2, size, size), np.float32)
    after = before.copy()
    label = np.zeros((size, size), np.uint8)
    label[change[0] : change[1], change[0] : change[1]] = 1
    after[:, label == 1] = 1.0
    return TrainingPair("t", before, after, label, np.ones((size, size), bool))


def test_sampler_oversamples_patches_containing_change():
    sampler = PatchSampler([_training_pair()], patch_size=16, length=200, positive_fraction=0.5, seed=1)
    with_change = sum(bool(sampler[i][2].any()) for i in range(200))
    # Uniform patches hold the 4x4 block only ~6 % of the time; half the patches are centred on it.
    assert with_change > 90


def test_sampler_is_reproducible_per_epoch():
    sampler = PatchSampler([_training_pair()], patch_size=16, length=4, seed=3)
    first = sampler[2][0].clone()
    assert torch.equal(first, sampler[2][0])
    sampler.set_epoch(1)
    assert sampler[2][0].shape == (2, 16, 16)


def test_sampler_pads_pairs_smaller_than_the_patch():
    sampler = PatchSampler([_training_pair(size=12, change=(2, 4))], patch_size=16, length=2)
    before, _, _label, valid = sampler[0]
    assert before.shape == (2, 16, 16)
    assert valid.sum() == 144


def test_augmentation_moves_label_with_the_images():
    pair = _training_pair(size=16, change=(1, 4))
    rng = np.random.default_rng(0)
    config = AugmentConfig(jitter=0.0)
    for _ in range(10):
        before, after, label, _valid = augment_patch(
            torch.from_numpy(pair.before),
            torch.from_numpy(pair.after),
            torch.from_numpy(pair.label[None].astype(np.float32)),
            torch.ones(1, 16, 16),
            config,
            rng,
        )
        changed = (after - before).abs().sum(0) > 0
        assert torch.equal(changed, label[0].bool())


def test_jitter_changes_radiometry_but_not_the_label():
    pair = _training_pair(size=16)
    rng = np.random.default_rng(0)
    config = AugmentConfig(flips=False, rot90=False, date_swap=False, jitter=0.1)
    before, _, label, _ = augment_patch(
        torch.from_numpy(pair.before),
        torch.from_numpy(pair.after),
        torch.from_numpy(pair.label[None].astype(np.float32)),
        torch.ones(1, 16, 16),
        config,
        rng,
    )
    assert not torch.equal(before, torch.from_numpy(pair.before))
    assert torch.equal(label[0], torch.from_numpy(pair.label.astype(np.float32)))


def test_pair_weights_steer_sampling():
    a, b = _training_pair(), _training_pair()
    sampler = PatchSampler([a, b], patch_size=16, length=1, positive_fraction=0.0, pair_weights=[1.0, 0.0])
    assert sampler._pair_weights.tolist() == [1.0, 0.0]
