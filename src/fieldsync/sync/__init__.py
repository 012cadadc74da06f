"""The sync engine: one page of a content-hash diff, independent of any web framework."""
