"""Operations on top of the core: what people do with an index and a state once records flow.

- :mod:`ingest.ops.verify`: reconcile a source range against the index, and repair it;
- :mod:`ingest.ops.replay`: summarize and re-send the dead-letter;
- :mod:`ingest.ops.status`: progress of the last run, from the ledger;
- :mod:`ingest.ops.report`: ClickOps and least-privilege reports;
- :mod:`ingest.ops.alerts`, :mod:`ingest.ops.dashboards`: Alerting monitors and saved objects.
"""

__all__: list[str] = []
