"""The warehouse adapter (Databricks or any DB-API database) and the local sample warehouse."""
