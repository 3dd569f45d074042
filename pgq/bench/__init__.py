"""`pgq bench`: pgq's own throughput and latency next to the raw-SQL ceiling.

Every run uses a database of its own (created, migrated, dropped), runs each workload
against pgq and, right before it, the same work as bare SQL on the same table, and
reports pgq as a fraction of that ceiling. Modules: ``database`` (the throwaway
database), ``tasks`` (the no-op app the worker processes run), ``workers`` (starting
and stopping them), ``raw`` (the ceilings), ``workloads`` (pgq itself), ``stats``
(percentiles and rates), ``report`` (table and JSON), ``runner`` (the order of it all).
"""

from pgq.bench.runner import WORKLOADS, BenchOptions, run_bench

__all__ = ["WORKLOADS", "BenchOptions", "run_bench"]
