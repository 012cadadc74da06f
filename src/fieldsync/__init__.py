"""FieldSync: content-hash sync of drone and agronomy survey data."""

__version__ = "0.1.0"
