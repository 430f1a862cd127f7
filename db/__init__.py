"""Persistence: connection, tables, repositories, migrations and the embedded server."""
