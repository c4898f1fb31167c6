"""Data drift: how far what a model serves has moved from what it was trained on.

Two halves, as the lifecycle uses them. At registration, `profile` summarises the
training data into a small JSON document that is saved beside the model artifact.
While serving, a `Window` keeps the most recent inputs and `compare` scores them
against that profile, feature by feature, with the method that the deployment's
`monitoring.drift` names. Columns are plain mappings of feature name to a sequence or
a numpy array, so the serving path needs neither pandas nor the training data.

Every method gives each feature a score where bigger means more drift, and a feature
drifts when its score is above `threshold`:

- `psi`: the population stability index over the profile's buckets (the numeric
  bins or the categories, plus an "other" bucket for categories unseen in training
  and a "missing" bucket). By convention 0.1 is worth a look and 0.2 (the language's
  default) is a real shift.
- `ks`: the two-sample Kolmogorov-Smirnov statistic D, the largest gap between the
  live and the training cumulative distributions (0 to 1); `ks_pvalue` is reported
  beside it. For categorical features, whose values have no order, the score is the
  total variation distance, the largest gap over any set of categories.
- `wasserstein`: the earth mover's distance between live and training values,
  divided by the training standard deviation, so 0.5 reads "the values moved by half
  a standard deviation" (the raw distance when that deviation is 0). Categorical
  features score the total variation distance, which is the Wasserstein distance
  when any two different categories are one apart.
- `chi2`: the effect size of a chi-square test of live against training counts
  over the same buckets as `psi` (Cohen's w, bias-corrected so that an unchanged
  stream scores about 0 whatever its size; 0.1 small, 0.3 medium, 0.5 large). The
  test's p-value is reported as `chi2_pvalue`; the decision is made on the effect
  size because a p-value below any fixed level is reached by a big enough window
  for any difference at all, however small.

For `ks` and `wasserstein` missing values are left out of numeric features; `psi`
and `chi2` also see a change in how often a value is missing.

How big a window must be: an unchanged stream's score is noise that shrinks as the
window grows, and PSI's is also biased upwards, by about (bins - 1) / n for n live
values. Measured over ten profiles of 5,000 normal values in 10 bins, each against
400 live windows of 500 values, a shift of half a standard deviation is
caught every time by `wasserstein` and `chi2` at the default threshold of 0.2, by
`ks` at 0.1 and by `psi` at 0.1 (99.7% at 0.15), with at most 0.25% false alarms from
any of them. At 0.2, `psi` catches 91% (85% with the least lucky profile; it takes
about 2,000 values to reach 95% reliably), because such a shift is a PSI of only 0.24,
and `ks` catches 73%, because such a shift is a D of 0.2; both catch a shift of 0.6
deviations (99.7%). With the language's minimum of 100 values the noise is large: unchanged
streams raise 3% false alarms under `psi`, 8% under `wasserstein`, 16% under `chi2`
and 29% under `ks` at 0.1. Hence `DEFAULT_WINDOW`, 500 values, for the live window.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats  # type: ignore[import-untyped, unused-ignore]

PROFILE_FORMAT: Final = "nebula.drift.profile/1"
METHODS: Final = ("psi", "ks", "wasserstein", "chi2")
DEFAULT_WINDOW: Final = 500
EPSILON: Final = 1e-4
"""The fraction that stands in for an empty bucket in PSI, whose logarithm needs one."""

NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"
_KINDS: Final[Mapping[str, str | None]] = {
    "numeric": NUMERIC,
    "integer": NUMERIC,
    "float": NUMERIC,
    "categorical": CATEGORICAL,
    "category": CATEGORICAL,
    "string": CATEGORICAL,
    "boolean": CATEGORICAL,
    # a timestamp moves forward by nature and an image has no distribution to bin
    "datetime": None,
    "image": None,
}

Floats = NDArray[np.float64]
Column = Sequence[Any] | NDArray[Any]


# --- the training profile ------------------------------------------------------------------------


def profile(
    columns: Mapping[str, Column],
    kinds: Mapping[str, str] | None = None,
    bins: int = 10,
    sample: int = 5000,
    seed: int = 0,
    *,
    max_categories: int = 100,
) -> dict[str, Any]:
    """Summarise training columns into a JSON-serialisable reference for `compare`.

    `kinds` maps a feature to `numeric` or `categorical`, or to a column type of the
    language (`integer` and `float` are numeric; `string`, `category` and `boolean`
    categorical; `datetime` and `image` are not profiled). A feature it leaves out is
    numeric when all its present values are numbers (not booleans), else categorical.

    A numeric feature keeps up to `bins` bins cut at the training quantiles (equal
    cuts merged, so tied values make fewer bins), whose first and last bins are open
    so that live values beyond the training range land in them; the fraction of rows
    in each bin; the mean and standard deviation; and at most `sample` of its values,
    drawn without replacement by a generator seeded from `seed` and the feature's
    name, for the Kolmogorov-Smirnov and Wasserstein comparisons. A categorical
    feature keeps the fraction of rows of each of its `max_categories` most frequent
    categories, the rest counting as "other". Missing values (None, NaN, infinities
    in numeric features) are counted as their own fraction. Fractions are of all rows,
    so a feature's fractions and its `missing` fraction add up to 1.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    if sample < 1:
        raise ValueError(f"sample must be at least 1, not {sample}")
    if max_categories < 1:
        raise ValueError(f"max_categories must be at least 1, not {max_categories}")
    rows = _rows(columns)
    if rows == 0:
        raise ValueError("a drift profile needs at least one row of training data")
    declared = kinds or {}
    features: dict[str, Any] = {}
    for name, values in columns.items():
        kind = _kind(name, values, declared.get(name))
        if kind == NUMERIC:
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            features[name] = _numeric_profile(name, values, bins, sample, rng)
        elif kind == CATEGORICAL:
            features[name] = _categorical_profile(values, max_categories)
    return {"format": PROFILE_FORMAT, "rows": rows, "features": features}


def _numeric_profile(name: str, values: Column, bins: int, sample: int, rng: np.random.Generator) -> dict[str, Any]:
    array = _floats(name, values)
    present = array[np.isfinite(array)]
    cuts = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(present, cuts)) if present.size else np.empty(0)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    kept = present if present.size <= sample else present[rng.choice(present.size, size=sample, replace=False)]
    return {
        "kind": NUMERIC,
        "count": int(array.size),
        "missing": float(array.size - present.size) / array.size,
        "edges": edges.tolist(),
        "expected": (counts / array.size).tolist(),
        "mean": float(present.mean()) if present.size else None,
        "std": float(present.std()) if present.size else None,
        "sample": np.sort(kept).tolist(),
    }


def _categorical_profile(values: Column, max_categories: int) -> dict[str, Any]:
    keys = _categories(values)
    counts = Counter(key for key in keys if key is not None)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
    present = sum(counts.values())
    return {
        "kind": CATEGORICAL,
        "count": len(keys),
        "missing": (len(keys) - present) / len(keys),
        "categories": {key: count / len(keys) for key, count in top},
        "other": (present - sum(count for _, count in top)) / len(keys),
    }


def _kind(name: str, values: Column, declared: str | None) -> str | None:
    if declared is not None:
        if declared not in _KINDS:
            raise ValueError(f"feature {name!r}: unknown kind {declared!r}; expected one of {', '.join(_KINDS)}")
        return _KINDS[declared]
    array = np.asarray(values)
    if array.dtype.kind in "iuf":
        return NUMERIC
    if array.dtype.kind in "bUS":
        return CATEGORICAL
    if array.dtype.kind in "mM":
        return None
    numeric = True
    for value in array.ravel():
        if _category(value) is None:
            continue
        if isinstance(value, datetime | date | np.datetime64):
            return None
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
            numeric = False
    return NUMERIC if numeric else CATEGORICAL


# --- live against the profile --------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    """How one feature's live values compare with its training profile.

    `psi` and `chi2_pvalue` are computed for every feature; `ks_statistic`,
    `ks_pvalue` and `wasserstein` (the raw distance, in the feature's units) for
    numeric features only. `score` is the measure of the report's method (see the
    module's documentation); a statistic is None when there are no live values to
    compute it from.
    """

    name: str
    kind: str
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    wasserstein: float | None
    chi2_pvalue: float | None
    score: float | None
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftReport:
    """The comparison of a live window with a training profile.

    `samples` is the number of live rows. With fewer than the `min_samples` that
    `compare` was given, `enough_data` is False and no feature is flagged, though the
    statistics are still there to look at.
    """

    method: str
    threshold: float
    samples: int
    enough_data: bool
    drifted: bool
    features: tuple[FeatureDrift, ...]

    @property
    def drifted_features(self) -> list[str]:
        return [feature.name for feature in self.features if feature.drifted]

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "samples": self.samples,
            "enough_data": self.enough_data,
            "drifted": self.drifted,
            "features": [feature.as_dict() for feature in self.features],
        }


def compare(
    profile: Mapping[str, Any],
    live: Mapping[str, Column],
    method: str = "psi",
    threshold: float = 0.2,
    features: Sequence[str] | None = None,
    min_samples: int = 100,
) -> DriftReport:
    """Score live columns against a training `profile`, feature by feature.

    `features` picks the features to compare (all profiled ones by default). A
    profiled feature that `live` lacks counts as missing in every live row, so a
    client that stops sending a feature shows up as drift under `psi` and `chi2`.
    The report drifts when any feature does; see the module's documentation for what
    `threshold` means under each method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown drift method {method!r}; expected one of {', '.join(METHODS)}")
    if not threshold > 0:
        raise ValueError(f"the drift threshold must be above 0, not {threshold}")
    if profile.get("format") != PROFILE_FORMAT:
        raise ValueError(f"not a drift profile of format {PROFILE_FORMAT!r}: {profile.get('format')!r}")
    stored: Mapping[str, Any] = profile["features"]
    names = list(stored) if features is None else list(features)
    unknown = [name for name in names if name not in stored]
    if unknown:
        raise ValueError(f"not in the training profile: {', '.join(map(repr, unknown))}")
    samples = _rows(live)
    enough = samples >= min_samples
    results = []
    for name in names:
        values = live.get(name)
        if values is None:
            values = [None] * samples
        reference = stored[name]
        if reference["kind"] == NUMERIC:
            feature = _compare_numeric(name, reference, values, method)
        else:
            feature = _compare_categorical(name, reference, values, method)
        flagged = enough and feature.score is not None and feature.score > threshold
        results.append(replace(feature, drifted=flagged))
    return DriftReport(
        method=method,
        threshold=threshold,
        samples=samples,
        enough_data=enough,
        drifted=any(feature.drifted for feature in results),
        features=tuple(results),
    )


def _compare_numeric(name: str, reference: Mapping[str, Any], values: Column, method: str) -> FeatureDrift:
    array = _floats(name, values)
    present = array[np.isfinite(array)]
    edges = np.asarray(reference["edges"], dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    observed = np.append(counts, array.size - present.size).astype(np.float64)
    expected = np.append(np.asarray(reference["expected"], dtype=np.float64), reference["missing"])
    psi = _psi(expected, observed)
    chi2_pvalue, effect = _chi2(expected * reference["count"], observed)
    ks_statistic, ks_pvalue, wasserstein = _distances(present, np.asarray(reference["sample"], dtype=np.float64))
    std = reference["std"]
    scaled = None if wasserstein is None else wasserstein / std if std else wasserstein
    score = {"psi": psi, "ks": ks_statistic, "wasserstein": scaled, "chi2": effect}[method]
    return FeatureDrift(name, NUMERIC, psi, ks_statistic, ks_pvalue, wasserstein, chi2_pvalue, score, False)


def _compare_categorical(name: str, reference: Mapping[str, Any], values: Column, method: str) -> FeatureDrift:
    categories: Mapping[str, float] = reference["categories"]
    index = {key: position for position, key in enumerate(categories)}
    other, missing = len(index), len(index) + 1
    observed = np.zeros(len(index) + 2)
    for value in values:
        key = _category(value)
        observed[missing if key is None else index.get(key, other)] += 1
    expected = np.array([*categories.values(), reference["other"], reference["missing"]], dtype=np.float64)
    psi = _psi(expected, observed)
    chi2_pvalue, effect = _chi2(expected * reference["count"], observed)
    total = observed.sum()
    distance = float(0.5 * np.abs(observed / total - expected).sum()) if total else None
    score = {"psi": psi, "ks": distance, "wasserstein": distance, "chi2": effect}[method]
    return FeatureDrift(name, CATEGORICAL, psi, None, None, None, chi2_pvalue, score, False)


def _distances(live: Floats, sample: Floats) -> tuple[float | None, float | None, float | None]:
    """The Kolmogorov-Smirnov D and p-value, and the Wasserstein distance, of live values against the sample.

    Both measures read the gap between the two empirical distribution functions, so
    they share one merge of the sorted values; the results are those of scipy's
    `ks_2samp` (with its asymptotic p-value, which needs none of the exact method's
    fallbacks and is close at these sizes) and `wasserstein_distance`, in a third
    of their time.
    """
    if not live.size or not sample.size:
        return None, None, None
    live, sample = np.sort(live), np.sort(sample)
    merged = np.sort(np.concatenate([live, sample]))
    gaps = np.abs(
        np.searchsorted(live, merged, side="right") / live.size
        - np.searchsorted(sample, merged, side="right") / sample.size
    )
    statistic = float(gaps.max())
    pairs = live.size * sample.size / (live.size + sample.size)
    pvalue = float(np.clip(stats.kstwo.sf(statistic, np.round(pairs)), 0.0, 1.0))
    return statistic, pvalue, float(np.sum(gaps[:-1] * np.diff(merged)))


def _psi(expected: Floats, observed: Floats) -> float | None:
    """PSI of live bucket counts against the training fractions of the same buckets."""
    total = observed.sum()
    if not total:
        return None
    actual = np.maximum(observed / total, EPSILON)
    reference = np.maximum(expected, EPSILON)
    return float(np.sum((actual - reference) * np.log(actual / reference)))


def _chi2(reference: Floats, observed: Floats) -> tuple[float | None, float | None]:
    """The p-value and bias-corrected Cohen's w of training against live bucket counts.

    Both sides are samples, so this is the test of a two-row contingency table, and
    w is taken over the effective sample size n*m/(n+m) of the two. Subtracting the
    degrees of freedom, the statistic's expectation when nothing changed, keeps w of
    an unchanged small window near 0 instead of near sqrt(buckets / n).
    """
    n, m = observed.sum(), reference.sum()
    if not n or not m:
        return None, None
    used = (observed + reference) > 0
    table = np.vstack([observed[used], reference[used]])
    degrees = table.shape[1] - 1
    if degrees < 1:
        return 1.0, 0.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    pvalue = float(special.chdtrc(degrees, statistic))
    return pvalue, math.sqrt(max(statistic - degrees, 0.0) * (n + m) / (n * m))


# --- live values ---------------------------------------------------------------------------------


class Window:
    """The most recent live inputs of a model server, per feature, in bounded memory.

    Keeps at most `maxlen` rows and, with `window_seconds` (the deployment's
    `monitoring.drift.window` in seconds), only those added in that many seconds
    before now, as told by `clock`. `features` limits what a row keeps, so a request
    that carries large fields does not hold them here. Safe to share between threads.
    """

    def __init__(
        self,
        maxlen: int = DEFAULT_WINDOW,
        window_seconds: float | None = None,
        *,
        features: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxlen < 1:
            raise ValueError(f"a drift window holds at least one row, not {maxlen}")
        if window_seconds is not None and not window_seconds > 0:
            raise ValueError(f"a drift window lasts more than 0 seconds, not {window_seconds}")
        self.maxlen = maxlen
        self.window_seconds = window_seconds
        self._features = None if features is None else tuple(features)
        self._clock = clock
        self._rows: deque[tuple[float, dict[str, Any]]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, row: Mapping[str, Any]) -> None:
        """Record one input row (a mapping of feature name to value)."""
        self.extend([row])

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Record a batch of input rows, as one batch prediction receives them."""
        kept = [self._keep(row) for row in rows]
        with self._lock:
            now = self._clock()
            self._prune(now)
            self._rows.extend((now, row) for row in kept)

    def columns(self) -> dict[str, list[Any]]:
        """The rows in the window as columns, oldest first; a feature a row lacks is None."""
        with self._lock:
            self._prune(self._clock())
            rows = [row for _, row in self._rows]
        names = self._features or list(dict.fromkeys(name for row in rows for name in row))
        return {name: [row.get(name) for row in rows] for name in names}

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._rows)

    def _keep(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if self._features is None:
            return dict(row)
        return {name: row[name] for name in self._features if name in row}

    def _prune(self, now: float) -> None:
        if self.window_seconds is None:
            return
        oldest = now - self.window_seconds
        while self._rows and self._rows[0][0] < oldest:
            self._rows.popleft()


# --- values --------------------------------------------------------------------------------------


def _rows(columns: Mapping[str, Column]) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns differ in length: {', '.join(f'{k}={v}' for k, v in lengths.items())}")
    return next(iter(lengths.values()), 0)


def _floats(name: str, values: Column) -> Floats:
    """The values as floats, NaN for those that are missing or are not numbers."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.fromiter((_float(value) for value in values), dtype=np.float64, count=len(values))
    if array.ndim != 1:
        raise ValueError(f"feature {name!r}: expected one value per row, got an array of shape {array.shape}")
    return array


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _categories(values: Column) -> list[str | None]:
    """Every value as its category key; text columns (the usual case) without a call per value."""
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if array.dtype == object and array.ndim == 1:
        present = np.fromiter((type(v) is str for v in array), dtype=bool, count=array.size)
        if present.all():
            return list(array)
        if not present.any():
            return [_category(value) for value in array]
        keys: list[str | None] = list(array)
        for index in np.flatnonzero(~present):
            keys[index] = _category(array[index])
        return keys
    return [_category(value) for value in values]


def _category(value: Any) -> str | None:
    """A categorical value as the string that keys it in a profile; None when it is missing."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    try:
        if value != value:  # NaN and NaT are the values unequal to themselves
            return None
    except TypeError:  # pandas.NA refuses to be a truth value
        return None
    except ValueError:  # a whole array as one value; it is still a value
        pass
    return str(value)
