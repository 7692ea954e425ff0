"""Every component id, one class per page; dict factories for pattern-matching ids."""


class Shell:
    URL = "url"
    FILTERS = "filters-store"
    VERSION = "data-version-store"
    INTERVAL = "refresh-interval"
    UPDATED = "last-updated"
    BANNER = "source-banner"
    DATES = "filter-dates"
    VENDOR = "filter-vendor"
    PRODUCT = "filter-product"
    CATEGORY = "filter-category"
    FILTER_MESSAGE = "filter-message"
    METRICS = "metric-select"


class Overview:
    KPIS = "overview-kpis"
    TREND = "overview-trend"
    COMPARE = "overview-compare"
    MESSAGE = "overview-message"


class Groups:
    BOARD = "groups-board"
    NEARING = "groups-nearing"
    SERIES = "groups-series"
    EVENTS = "groups-events"
    MESSAGE = "groups-message"


class Products:
    HEATMAP = "products-heatmap"
    HEATMAP_MODE = "products-heatmap-mode"
    BARS = "products-bars"
    BARS_BY = "products-bars-by"
    GROWTH = "products-growth"
    GROWTH_PERIOD = "products-growth-period"
    MESSAGE = "products-message"


class Customers:
    TOP = "customers-top"
    COHORTS = "customers-cohorts"
    SEGMENTS = "customers-segments"
    SEGMENT_TABLE = "customers-segment-table"
    MESSAGE = "customers-message"


class Forecast:
    SERIES_KIND = "forecast-kind"
    SERIES_ITEM = "forecast-item"
    METRIC = "forecast-metric"
    HORIZON = "forecast-horizon"
    GRAPH = "forecast-graph"
    BACKTEST = "forecast-backtest"
    MESSAGE = "forecast-message"
    POLL = "forecast-poll"


class Operations:
    DELAY = "ops-delay"
    PENDING = "ops-pending"
    REFUNDS = "ops-refunds"
    ANOMALIES = "ops-anomalies"
    ALERTS = "ops-alerts"
    QUARANTINE = "ops-quarantine"
    MESSAGE = "ops-message"
    CARDS = "ops-cards"


def kpi(name: str) -> dict:
    """Pattern-matching id of one KPI card value (repeated widget)."""
    return {"type": "kpi-value", "name": name}
