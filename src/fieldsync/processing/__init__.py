"""Mosaic processing: COG creation, clip boundaries, the job queue and its worker."""
