-- 25_robustness.sql: the robustness suite's results (`ser robustness`, and the publish step
-- of `ser distill`), materialised like `metrics` so a plain `duckdb` process can read them.
--
-- Placeholders: {{robustness}} the lake's robustness Parquet parts, or an empty typed relation.

-- One row per (model, corpus, split, reference, teacher, perturbation, dimension) and suite
-- run: CCC on clean and perturbed audio with intervals, the drop with its paired interval,
-- the share of unchanged predictions, and audEERING ser-tests' thresholds with pass/fail.
CREATE OR REPLACE TABLE robustness AS
SELECT * FROM {{robustness}} AS r;

-- The newest suite run of each (model, corpus, split, reference, teacher, perturbation,
-- dimension): re-running with other options (seed, resamples) adds rows; reports want one.
CREATE OR REPLACE VIEW latest_robustness AS
SELECT * FROM robustness
QUALIFY row_number() OVER (
    PARTITION BY model_key, corpus, split, reference, coalesce(teacher_id, ''), perturbation,
                 dimension
    ORDER BY evaluated_at DESC, robustness_id) = 1;
