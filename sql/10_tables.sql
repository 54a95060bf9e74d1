-- 10_tables.sql: small tables materialised in the file, so that a plain `duckdb` process
-- (no project code, no S3 access) can query them.
--
-- Placeholders (rendered by ser_pipeline.db, never from user input):
--   {{metrics}}  the lake's metrics Parquet parts, or an empty typed relation
-- Staged by Python before this file runs:
--   _stage_runs  one row per runs/<run_id>/run.json

-- Evaluation results: one row per (model, teacher, corpus, split, reference, dimension).
CREATE OR REPLACE TABLE metrics AS
SELECT * FROM {{metrics}} AS m;

-- Training runs (run.json of every run folder; the full JSON is kept in `meta`).
CREATE OR REPLACE TABLE runs AS
SELECT * FROM _stage_runs;
