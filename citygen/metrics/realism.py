"""Do generated layouts pass for real ones? Distances between sets of tiles, from their morphology statistics
(:mod:`citygen.metrics.morphology`) and their street masks.

Every measure compares a set of tiles with the real reference tiles; the same measure of *other* real tiles
(spatially held out, e.g. the validation split against the test split) is the baseline a generator is judged
against: real cities do not score a perfect 1.0 or 0.5 against each other either.

- :func:`frechet_ratio`: Fréchet distance of the standardised statistics, over the same distance between two
  disjoint halves of the reference tiles (about 1 for real tiles, far above for garbage);
- :func:`c2st_accuracy`: cross-validated accuracy of a classifier telling reference from other tiles (0.5: it
  cannot);
- :func:`wasserstein_per_statistic`: 1-D Wasserstein distance per statistic over the reference spread;
- :func:`prdc`: precision, recall, density and coverage in statistic space (Naeem et al. 2020);
- :func:`best_iou`: each tile's best street IoU against a set of tiles (memorisation: copies of training tiles).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from scipy.stats import wasserstein_distance


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Every array scaled by the reference's mean and standard deviation per column (constant columns: 1)."""
    mean = reference.mean(axis=0)
    std = reference.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return [(a - mean) / std for a in (reference, *others)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (as FID, on statistics)."""
    mu = a.mean(axis=0) - b.mean(axis=0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # a statistic constant in a small set makes the product singular: a tiny ridge, as FID implementations add
    ridge = 1e-6 * np.eye(len(ca))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm((ca + ridge) @ (cb + ridge))
    if np.iscomplexobj(root):
        root = root.real
    return float(mu @ mu + np.trace(ca + cb - 2 * root))


def frechet_ratio(reference: np.ndarray, other: np.ndarray, *, repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Fréchet distance of ``other`` to ``reference`` (standardised by the reference) over the mean distance
    between two random disjoint halves of the reference (``repeats`` draws)."""
    ref, oth = standardise(reference, other)
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(repeats):
        order = rng.permutation(len(ref))
        half = len(ref) // 2
        halves.append(frechet_distance(ref[order[:half]], ref[order[half : 2 * half]]))
    distance, between_halves = frechet_distance(ref, oth), float(np.mean(halves))
    return {"distance": distance, "halves": between_halves, "ratio": distance / max(between_halves, 1e-12)}


def c2st_accuracy(reference: np.ndarray, other: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Classifier two-sample test: stratified ``folds``-fold accuracy of a logistic regression on standardised
    statistics telling the two sets apart, on equal numbers of each (the larger set subsampled): 0.5 means
    indistinguishable."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(reference), len(other))
    x = np.concatenate([reference[rng.permutation(len(reference))[:n]], other[rng.permutation(len(other))[:n]]])
    y = np.repeat([0, 1], n)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    return float(cross_val_score(model, x, y, cv=cv).mean())


def wasserstein_per_statistic(reference: np.ndarray, other: np.ndarray, names: list[str]) -> dict[str, float]:
    """1-D Wasserstein distance per statistic over the reference's standard deviation, largest first."""
    out = {}
    for j, name in enumerate(names):
        spread = reference[:, j].std()
        out[name] = float(wasserstein_distance(reference[:, j], other[:, j]) / (spread if spread > 1e-12 else 1.0))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def prdc(reference: np.ndarray, other: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``other`` against ``reference`` (Naeem et al. 2020) with
    ``k``-nearest-neighbour balls, in the reference-standardised statistic space."""
    from sklearn.neighbors import NearestNeighbors

    ref, oth = standardise(reference, other)
    k = min(k, len(ref) - 1, len(oth) - 1)
    radius_ref = NearestNeighbors(n_neighbors=k + 1).fit(ref).kneighbors(ref)[0][:, -1]
    radius_oth = NearestNeighbors(n_neighbors=k + 1).fit(oth).kneighbors(oth)[0][:, -1]
    d = np.linalg.norm(ref[:, None, :] - oth[None, :, :], axis=-1)  # [n_ref, n_other]
    inside = d < radius_ref[:, None]
    return {
        "precision": float(inside.any(axis=0).mean()),
        "recall": float((d < radius_oth[None, :]).any(axis=1).mean()),
        "density": float(inside.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < radius_ref).mean()),
    }


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[len(a), len(b)]`` between boolean masks ``a`` ``[n, H, W]`` and ``b`` ``[m, H, W]`` (two empty masks:
    0, so blank layouts do not count as copies)."""
    fa = a.reshape(len(a), -1).astype(np.float32)
    fb = b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(axis=1)[:, None] + fb.sum(axis=1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def best_iou(masks: np.ndarray, against: np.ndarray, *, chunk: int = 512) -> np.ndarray:
    """Each mask's highest IoU with any mask of ``against`` (e.g. the street masks of the training crops)."""
    best = np.zeros(len(masks))
    for start in range(0, len(against), chunk):
        best = np.maximum(best, iou_matrix(masks, against[start : start + chunk]).max(axis=1))
    return best


def pairwise_dissimilarity(masks: np.ndarray) -> float:
    """Mean 1 - IoU over the pairs of ``masks`` (NaN for fewer than two, or when all are empty)."""
    if len(masks) < 2:
        return float("nan")
    iou = iou_matrix(masks, masks)
    pairs = np.triu_indices(len(masks), k=1)
    both_empty = (masks.reshape(len(masks), -1).sum(axis=1) == 0)[pairs[0]] & (
        masks.reshape(len(masks), -1).sum(axis=1) == 0
    )[pairs[1]]
    values = 1 - iou[pairs][~both_empty]
    return float(values.mean()) if len(values) else float("nan")


def pixel_c2st_accuracy(
    reference: np.ndarray, other: np.ndarray, *, folds: int = 3, epochs: int = 8, seed: int = 0
) -> float:
    """Classifier two-sample test on pixels: stratified ``folds``-fold accuracy of a small CNN (three strided
    convolutions, global pooling, a linear read-out; Adam, ``epochs`` passes) telling layouts ``[n, C, H, W]`` of
    the two sets apart, on equal numbers of each. Seconds on a CPU for a few hundred 128 px tiles; 0.5 means the
    network finds nothing that separates them."""
    import torch
    from sklearn.model_selection import StratifiedKFold
    from torch import nn

    rng = np.random.default_rng(seed)
    n = min(len(reference), len(other))
    x = np.concatenate([reference[rng.permutation(len(reference))[:n]], other[rng.permutation(len(other))[:n]]])
    y = np.repeat([0.0, 1.0], n)
    data, labels = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    correct = 0
    for train, test in StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(x, y):
        torch.manual_seed(seed)
        c = x.shape[1]
        model = nn.Sequential(
            nn.Conv2d(c, 16, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 1),
        )
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for batch in torch.randperm(len(train), generator=order).split(32):
                rows = torch.from_numpy(train)[batch]
                loss = nn.functional.binary_cross_entropy_with_logits(model(data[rows])[:, 0], labels[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            predicted = model(data[torch.from_numpy(test)])[:, 0] > 0
        correct += int((predicted == labels[torch.from_numpy(test)].bool()).sum())
    return correct / len(y)
