"""PostgreSQL: the embedded server, the pool, migrations, partitions, writers and read queries."""
