"""Pareto search over repairs: `search(space, out, trials=, proxy_frac=)` finds the
safety/helpfulness front (ASR, over-refusal, helpfulness) with optuna, cheaply (proxy subsets) and
kill-safely (SQLite storage + eval cache). `load_space` validates a space; see docs/search.md."""

from safeadapt.repair.search.engine import search
from safeadapt.repair.search.space import Space, load_space

__all__ = ["Space", "load_space", "search"]
