-- 10_tables.sql: small tables materialised in the file, so that a plain `duckdb` process
-- (no project code, no S3 access) can query them.
--
-- Placeholders (rendered by ser_pipeline.db, never from user input):
--   {{metrics}} {{fairness}} {{comparisons}}  the lake's Parquet parts of these tables, or
--                an empty typed relation
-- Staged by Python before this file runs:
--   _stage_runs  one row per runs/<run_id>/run.json

-- Evaluation results: one row per (model, teacher, corpus, split, reference, aggregation,
-- dimension). Rows written before intervals existed have a NULL aggregation: they are
-- global CCCs, and read as 'global' here so that every query can filter on it.
CREATE OR REPLACE TABLE metrics AS
SELECT * REPLACE (coalesce(aggregation, 'global') AS aggregation) FROM {{metrics}} AS m;

-- Fairness slices (CCC per gender group with intervals, and the largest gap) of the
-- evaluations whose clips carry the attribute; see schemas.FAIRNESS.
CREATE OR REPLACE TABLE fairness AS
SELECT * FROM {{fairness}} AS f;

-- Paired model comparisons (`ser compare` and the publish gate's); see schemas.COMPARISONS.
CREATE OR REPLACE TABLE comparisons AS
SELECT * FROM {{comparisons}} AS c;

-- Training runs (run.json of every run folder; `meta` holds it as JSON, with run_id and the
-- best and initial dev CCC, in the v1 layout: ser_pipeline.runs.RunInfo.to_dict()).
CREATE OR REPLACE TABLE runs AS
SELECT * FROM _stage_runs;
