"""pySigma's view of ct-ingest: installed as ``sigma.pipelines.ct_ingest`` (pyproject.toml maps
this folder there), where ``InstalledSigmaPlugins.autodiscover()`` looks for pipelines, so
``sigma convert -p ct_ingest`` and any pySigma caller find ct-ingest's pipeline by name."""

from __future__ import annotations

from sigma.processing.pipeline import ProcessingPipeline

from ingest.sigma.pipeline import pipeline

__all__ = ["ct_ingest_pipeline", "pipelines"]


def ct_ingest_pipeline() -> ProcessingPipeline:
    """ct-ingest's CloudTrail index: field names mapped, CloudTrail rules only."""
    return pipeline()


pipelines = {"ct_ingest": ct_ingest_pipeline}
