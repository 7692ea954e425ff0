"""Where vendor scoping lives: every sales query builds its WHERE clause here.

The scope comes from the server-side session (never a callback input). A filter on another
vendor than the scoped one yields nothing rather than that vendor's numbers.
"""
from __future__ import annotations

import sqlalchemy as sa

from data_access.filters import Filters, Scope


def line_conditions(filters: Filters, scope: Scope, alias: str = "l") -> tuple[list[str], dict, list]:
    """SQL conditions on order lines (or the daily rollup) for filters within the scope.

    Returns (conditions, params, expanding bindparams to attach to the text()).
    """
    conds, params, binds = [], {}, []
    vendors = set(filters.vendor_ids)
    if scope.vendor_id is not None:
        vendors = (vendors & {scope.vendor_id}) if vendors else {scope.vendor_id}
        if not vendors:
            conds.append("1 = 0")  # asked for another vendor's data: nothing
    for column, values, name in ((f"{alias}.vendor_id", vendors, "f_vendors"),
                                 (f"{alias}.product_id", filters.product_ids, "f_products"),
                                 (f"{alias}.category_id", filters.category_ids, "f_categories")):
        if values:
            conds.append(f"{column} IN :{name}")
            params[name] = sorted(values)
            binds.append(sa.bindparam(name, expanding=True))
    return conds, params, binds


def where(conds: list[str]) -> str:
    return " AND ".join(conds) if conds else "1 = 1"
