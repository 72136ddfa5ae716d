"""Index templates and settings for ct-ingest, shipped inside the package as ``ingest.mappings``."""
