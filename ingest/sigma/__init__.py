"""Sigma detections on ct-ingest's index: the pySigma pipeline (:mod:`ingest.sigma.pipeline`),
a backend that writes OpenSearch query DSL (:mod:`ingest.sigma.backend`), rule files to queries
(:mod:`ingest.sigma.convert`) and the hits of rules in the index (:mod:`ingest.sigma.hunt`)."""

from __future__ import annotations

from ingest.sigma.convert import Converted, convert_paths
from ingest.sigma.pipeline import pipeline

__all__ = ["Converted", "convert_paths", "pipeline"]
