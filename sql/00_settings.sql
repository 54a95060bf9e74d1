-- 00_settings.sql: connection settings, run first.
-- DuckDB must never try to download an extension (no internet here, and a silent
-- download would be a supply-chain surprise anyway). These are per-connection settings;
-- ser_pipeline.db.connect() applies them to every connection too.
SET autoinstall_known_extensions = false;
SET autoload_known_extensions = false;
