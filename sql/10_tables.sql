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

-- Training runs (run.json of every run folder; `meta` holds it as JSON, with run_id and the
-- best and initial dev CCC, in the v1 layout: ser_pipeline.runs.RunInfo.to_dict()).
CREATE OR REPLACE TABLE runs AS
SELECT * FROM _stage_runs;
