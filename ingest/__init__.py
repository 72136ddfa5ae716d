"""ct-ingest: CloudTrail archives from S3 into OpenSearch, fast, exactly once, for analysis."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
