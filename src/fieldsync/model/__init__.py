"""The domain model: entity kinds, their fields and their sync representations."""
