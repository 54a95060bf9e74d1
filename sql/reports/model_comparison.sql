-- Model comparison: ΔCCC of model A against model B on the same clips, with a paired interval and a verdict.
--
-- One row per (A, B, corpus, split, reference, teacher, purpose, dimension) from the
-- latest comparison (`ser compare A B`, or the publish gate's candidate against `latest`):
-- CCC of each model, delta = CCC(A) - CCC(B) and its paired percentile bootstrap interval
-- (delta_lo, delta_hi; the same resampled speakers, or clips, for both models: ci_unit,
-- ci_units), and the verdict: 'better' when the whole interval lies above 0, 'worse'
-- when it lies below, else 'not distinguishable' (absence of evidence, not equivalence).
-- Dimension 'mean' compares the mean CCC over arousal, dominance and valence.
--
-- @param model_a    VARCHAR default NULL  Only comparisons whose model A is this (name or run id).
-- @param model_b    VARCHAR default NULL  Only comparisons whose model B is this.
-- @param corpus     VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param split      VARCHAR default NULL  Only this split; NULL = every split.
-- @param reference  VARCHAR default NULL  'teacher' or 'human'; NULL = both.
-- @param purpose    VARCHAR default NULL  'compare' (ser compare) or 'gate' (publish); NULL = both.
WITH latest AS (
    SELECT * FROM comparisons
    WHERE ($model_a IS NULL OR model_a = $model_a)
      AND ($model_b IS NULL OR model_b = $model_b)
      AND ($corpus IS NULL OR corpus = $corpus)
      AND ($split IS NULL OR split = $split)
      AND ($reference IS NULL OR reference = $reference)
      AND ($purpose IS NULL OR purpose = $purpose)
    QUALIFY row_number() OVER (
        PARTITION BY model_a_key, model_b_key, corpus, split, reference,
                     coalesce(teacher_id, ''), purpose, dimension
        ORDER BY compared_at DESC, comparison_id) = 1
)
SELECT model_a, model_b, corpus, split, reference, teacher_id, dimension, n,
       ccc_a, ccc_b, delta, delta_lo, delta_hi, verdict, ci_level, ci_unit, ci_units,
       purpose, compared_at
FROM latest
ORDER BY compared_at DESC, model_a, model_b, corpus, split, reference,
         list_position(['arousal', 'dominance', 'valence', 'mean'], dimension);
