"""Bulk loading of DataFrames into the source tables: COPY on PostgreSQL, executemany on SQLite.

Everything happens inside the caller's transaction, so a failed load leaves nothing behind.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data_access.schema import SOURCE_TABLES

LOAD_ORDER = [t.name for t in SOURCE_TABLES]  # parents before children (foreign keys)


def _sqlite_rows(df: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Rows as tuples with timestamps in SQLAlchemy's SQLite text format and NULLs as None."""
    cols = []
    for c in columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            arr = np.datetime_as_string(s.to_numpy(dtype="datetime64[us]"), unit="us")
            arr = np.char.replace(arr.astype(str), "T", " ").astype(object)
            arr[s.isna().to_numpy()] = None
            cols.append(arr)
        else:
            arr = s.to_numpy(dtype=object, copy=True)
            arr[pd.isna(s).to_numpy()] = None
            cols.append(arr)
    return list(zip(*[a.tolist() for a in cols]))


def _copy_postgres(conn: sa.Connection, table: str, df: pd.DataFrame, columns: list[str]) -> None:
    buf = io.StringIO()
    out = df[columns].copy()
    for c in columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            arr = np.datetime_as_string(out[c].to_numpy(dtype="datetime64[us]"), unit="us").astype(object)
            arr[out[c].isna().to_numpy()] = None  # the session runs in UTC: no offset needed
            out[c] = arr
    out.to_csv(buf, index=False, header=False, na_rep="\\N")
    buf.seek(0)
    cur = conn.connection.dbapi_connection.cursor()
    cur.copy_expert(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buf)
    cur.close()


def load_frames(conn: sa.Connection, frames: dict[str, pd.DataFrame], progress=lambda name, n: None,
                chunk: int = 50_000) -> int:
    """Insert every frame into its table (in foreign-key order); returns rows loaded."""
    meta_tables = {t.name: t for t in SOURCE_TABLES}
    total = 0
    for name in LOAD_ORDER:
        if name not in frames:
            continue
        df = frames[name]
        columns = [c.name for c in meta_tables[name].columns]
        for start in range(0, len(df), chunk):
            part = df.iloc[start:start + chunk]
            if conn.dialect.name == "postgresql":
                _copy_postgres(conn, name, part, columns)
            else:
                sql = f'INSERT INTO "{name}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
                conn.exec_driver_sql(sql, _sqlite_rows(part, columns))
            total += len(part)
            progress(name, len(part))
    return total
