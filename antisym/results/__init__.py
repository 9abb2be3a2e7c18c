"""Paper tables from run directories (`python -m antisym.results`) and the reproduction driver
(`python -m antisym.results.reproduce`, behind `make reproduce-table`)."""

from antisym.results.aggregate import write_tables
from antisym.results.paper import PAPER, table_rows
from antisym.results.rows import collect_runs

__all__ = ["PAPER", "collect_runs", "table_rows", "write_tables"]
