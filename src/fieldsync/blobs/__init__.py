"""File bytes behind a blob store: a local directory or an S3-compatible bucket (docs/blobs.md)."""
