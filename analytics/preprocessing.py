"""A reusable Preprocessor for any ChipChip table read into pandas (pd.read_sql of orders, users, ...).

fit() learns everything that must not change between datasets — fill values (medians, modes),
category lists, timestamp fills — and transform() applies exactly that to new data, so a model
trained on October sees November through the same lens (unseen categories are handled, never
silently given new columns). Column kinds are detected on fit:

- id:          `id` and `*_id` columns (keys, not features): dropped unless keep_ids=True;
- timestamp:   datetime dtypes and `*_at` columns (SQLite gives text): bucketed to the local
               day/week (Monday)/month/year start in the business time zone; naive = UTC;
- numeric:     numbers (Decimal included) -> float, NULLs filled by median/mean/zero/constant;
- categorical: everything else, NULLs -> 'missing' or the mode, then one-hot/label/ordinal.

Soft-deleted rows (deleted_at set) are dropped by default, on fit and transform alike.
"""
from __future__ import annotations

import decimal

import numpy as np
import pandas as pd

NUMERIC_NULLS = ("median", "mean", "zero", "constant")
CATEGORICAL_NULLS = ("missing", "mode")
TIMESTAMP_NULLS = ("keep", "median", "min", "max")
ENCODINGS = ("onehot", "label", "ordinal")
FREQS = ("day", "week", "month", "year")
MISSING = "missing"


def _check(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return value


class Preprocessor:
    """fit / transform / fit_transform / get_feature_names; see the module docstring.

    per_column overrides by column name, e.g. {"status": {"encoding": "ordinal",
    "order": ["PENDING", "COMPLETED"]}, "discount": {"nulls": "zero"}, "created_at": {"freq": "month"}}.
    """

    def __init__(self, numeric_nulls: str = "median", categorical_nulls: str = "missing",
                 timestamp_nulls: str = "keep", encoding: str = "onehot", timestamp_freq: str = "day",
                 tz: str = "Africa/Addis_Ababa", drop_deleted: bool = True, keep_ids: bool = False,
                 fill_value: float = 0.0, unseen: str = "ignore", max_categories: int = 100,
                 columns: list[str] | None = None, exclude: tuple[str, ...] = (), per_column: dict | None = None):
        self.numeric_nulls = _check(numeric_nulls, NUMERIC_NULLS, "numeric NULL strategy")
        self.categorical_nulls = _check(categorical_nulls, CATEGORICAL_NULLS, "categorical NULL strategy")
        self.timestamp_nulls = _check(timestamp_nulls, TIMESTAMP_NULLS, "timestamp NULL strategy")
        self.encoding = _check(encoding, ENCODINGS, "encoding")
        self.timestamp_freq = _check(timestamp_freq, FREQS, "timestamp bucket")
        self.unseen = _check(unseen, ("ignore", "error"), "unseen-category policy")
        if not max_categories > 0:
            raise ValueError("max_categories must be > 0")
        self.tz, self.drop_deleted, self.keep_ids, self.fill_value = tz, drop_deleted, keep_ids, fill_value
        self.max_categories, self.columns, self.exclude = max_categories, columns, tuple(exclude)
        self.per_column = per_column or {}
        self.plan_: dict | None = None

    # -- fitting ------------------------------------------------------------------------------
    def _option(self, col: str, key: str, default):
        return self.per_column.get(col, {}).get(key, default)

    @staticmethod
    def _kind(col: str, s: pd.Series) -> str:
        if col == "id" or col.endswith("_id"):
            return "id"
        if pd.api.types.is_datetime64_any_dtype(s) or col.endswith("_at"):
            return "timestamp"
        if pd.api.types.is_bool_dtype(s):
            return "categorical"
        if pd.api.types.is_numeric_dtype(s):
            return "numeric"
        sample = s.dropna()
        if len(sample) and all(isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)
                               for v in sample.iloc[:50]):
            return "numeric"
        return "categorical"

    def _rows(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.drop_deleted and "deleted_at" in df.columns:
            df = df[df["deleted_at"].isna()]
        return df

    def _local(self, s: pd.Series) -> pd.Series:
        ts = pd.to_datetime(s, utc=True, format="ISO8601") if not pd.api.types.is_datetime64_any_dtype(s) else s
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        return ts.dt.tz_convert(self.tz).dt.tz_localize(None)

    def fit(self, df: pd.DataFrame) -> "Preprocessor":
        """Learn column kinds, fill values and categories from df (soft-deleted rows excluded)."""
        df = self._rows(df)
        cols = [c for c in (self.columns or list(df.columns)) if c not in self.exclude]
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"columns not in the data: {', '.join(missing)}")
        plan = {}
        for col in cols:
            kind = self._kind(col, df[col])
            if col == "deleted_at" and self.drop_deleted:
                continue  # all NULL after dropping soft-deleted rows: no information left
            if kind == "id" and not self.keep_ids:
                continue
            step = {"kind": kind}
            if kind == "id":
                pass  # kept as it is (keep_ids=True): a key to join results back, not a feature
            elif kind == "numeric":
                values = pd.to_numeric(df[col], errors="coerce").astype(float)
                how = _check(self._option(col, "nulls", self.numeric_nulls), NUMERIC_NULLS, "numeric NULL strategy")
                fill = {"median": values.median(), "mean": values.mean(), "zero": 0.0,
                        "constant": self._option(col, "fill_value", self.fill_value)}[how]
                step["fill"] = 0.0 if pd.isna(fill) else float(fill)
            elif kind == "timestamp":
                local = self._local(df[col])
                how = _check(self._option(col, "nulls", self.timestamp_nulls), TIMESTAMP_NULLS,
                             "timestamp NULL strategy")
                step["fill"] = None if how == "keep" else getattr(local, how)()
                step["freq"] = _check(self._option(col, "freq", self.timestamp_freq), FREQS, "timestamp bucket")
            else:
                values = df[col].astype(object).where(df[col].notna(), None)
                how = _check(self._option(col, "nulls", self.categorical_nulls), CATEGORICAL_NULLS,
                             "categorical NULL strategy")
                counts = values.dropna().astype(str).value_counts()
                step["fill"] = MISSING if how == "missing" or counts.empty else counts.index[0]
                filled = values.astype(str).where(values.notna(), step["fill"])
                encoding = _check(self._option(col, "encoding", self.encoding), ENCODINGS, "encoding")
                order = self._option(col, "order", None)
                if encoding == "ordinal" and order is not None:
                    cats = [str(v) for v in order]
                else:  # most frequent first (ties by value), capped; the rest count as unseen
                    freq = filled.value_counts()
                    cats = sorted(freq.index, key=lambda v: (-freq[v], v))[:self.max_categories]
                    cats = sorted(cats) if encoding != "onehot" else cats
                step.update(encoding=encoding, categories=list(cats))
            plan[col] = step
        self.plan_ = plan
        return self

    # -- applying -----------------------------------------------------------------------------
    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Apply what fit() learned; columns are exactly get_feature_names(), rows keep their index."""
        if self.plan_ is None:
            raise RuntimeError("Preprocessor.transform called before fit")
        df = self._rows(df)
        missing = [c for c in self.plan_ if c not in df.columns]
        if missing:
            raise ValueError(f"columns missing from the data to transform: {', '.join(missing)}")
        parts = []
        for col, step in self.plan_.items():
            if step["kind"] == "numeric":
                parts.append(pd.to_numeric(df[col], errors="coerce").astype(float).fillna(step["fill"]).rename(col))
            elif step["kind"] == "timestamp":
                local = self._local(df[col])
                if step["fill"] is not None:
                    local = local.fillna(step["fill"])
                parts.append(self._bucket(local, step["freq"]).rename(col))
            elif step["kind"] == "id":
                parts.append(df[col].astype(object).rename(col))
            else:
                parts.append(self._encode(col, df[col], step))
        if not parts:
            return pd.DataFrame(index=df.index)
        return pd.concat(parts, axis=1)[self.get_feature_names()]

    @staticmethod
    def _bucket(local: pd.Series, freq: str) -> pd.Series:
        if freq == "day":
            return local.dt.floor("D")
        period = {"week": "W-SUN", "month": "M", "year": "Y"}[freq]  # W-SUN: weeks start on Monday
        out = pd.Series(pd.NaT, index=local.index, dtype="datetime64[ns]")
        ok = local.notna()
        out[ok] = local[ok].dt.to_period(period).dt.start_time
        return out

    def _encode(self, col: str, s: pd.Series, step: dict) -> pd.DataFrame | pd.Series:
        values = s.astype(object).where(s.notna(), None)
        filled = values.astype(str).where(values.notna(), step["fill"])
        cats = step["categories"]
        unseen = ~filled.isin(cats)
        if unseen.any() and self.unseen == "error":
            raise ValueError(f"column {col}: categories not seen on fit: {sorted(set(filled[unseen]))[:5]}")
        if step["encoding"] == "onehot":
            data = {f"{col}={c}": (filled == c).astype(np.uint8) for c in cats}
            return pd.DataFrame(data, index=s.index)
        codes = filled.map({c: i for i, c in enumerate(cats)}).fillna(-1).astype(int)
        return codes.rename(col)

    def fit_transform(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.fit(df).transform(df)

    def get_feature_names(self) -> list[str]:
        """Output column names, in order (one-hot columns are `col=value`)."""
        if self.plan_ is None:
            raise RuntimeError("Preprocessor.get_feature_names called before fit")
        names = []
        for col, step in self.plan_.items():
            if step.get("encoding") == "onehot":
                names += [f"{col}={c}" for c in step["categories"]]
            else:
                names.append(col)
        return names
