"""Storage: tables, engines, transactions and migrations, for SQLite and PostgreSQL alike."""
