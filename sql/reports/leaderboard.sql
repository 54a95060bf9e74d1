-- Leaderboard: the best model of each student, sorted by global CCC; per-speaker mean beside it.
--
-- Sorted by the GLOBAL CCC (all clips pooled: the paper's figure), mean over arousal,
-- dominance and valence, from each model's latest evaluation (`latest_metrics`,
-- aggregation 'global'). ccc_<dimension>_lo/_hi is its bootstrap interval (ci_level,
-- percentile method; ci_unit says whether speakers or clips were resampled and ci_units
-- how many). speaker_ccc_mean is the mean of per-speaker CCCs (aggregation
-- 'speaker_mean', each speaker counting once), shown beside it and never used to sort;
-- NULL where the clips have no speaker ids. Intervals are NULL for rows evaluated before
-- intervals existed. One row per (student, reference, teacher, corpus, split); models
-- without a student name count under their model name.
--
-- @param split      VARCHAR default 'test'  Split to rank on (dev, test, all); NULL = every split.
-- @param reference  VARCHAR default NULL    'teacher' or 'human'; NULL = both.
-- @param corpus     VARCHAR default NULL    Only this corpus; NULL = every corpus.
WITH chosen AS (
    SELECT * FROM latest_metrics
    WHERE ($split IS NULL OR split = $split)
      AND ($reference IS NULL OR reference = $reference)
      AND ($corpus IS NULL OR corpus = $corpus)
), scored AS (
    SELECT coalesce(student, model) AS student, model, model_key, reference, teacher_id,
           corpus, split,
           max(ccc)    FILTER (WHERE dimension = 'arousal')   AS ccc_arousal,
           max(ccc_lo) FILTER (WHERE dimension = 'arousal')   AS ccc_arousal_lo,
           max(ccc_hi) FILTER (WHERE dimension = 'arousal')   AS ccc_arousal_hi,
           max(ccc)    FILTER (WHERE dimension = 'dominance') AS ccc_dominance,
           max(ccc_lo) FILTER (WHERE dimension = 'dominance') AS ccc_dominance_lo,
           max(ccc_hi) FILTER (WHERE dimension = 'dominance') AS ccc_dominance_hi,
           max(ccc)    FILTER (WHERE dimension = 'valence')   AS ccc_valence,
           max(ccc_lo) FILTER (WHERE dimension = 'valence')   AS ccc_valence_lo,
           max(ccc_hi) FILTER (WHERE dimension = 'valence')   AS ccc_valence_hi,
           max(ci_level) AS ci_level, max(ci_unit) AS ci_unit, max(ci_units) AS ci_units,
           max(n) AS n, max(model_params) AS model_params, max(model_bytes) AS model_bytes,
           max(evaluated_at) AS evaluated_at
    FROM chosen
    WHERE aggregation = 'global'
    GROUP BY ALL
), per_speaker AS (
    SELECT model_key, reference, teacher_id, corpus, split,
           avg(ccc) AS speaker_ccc_mean, count(ccc) AS speaker_dimensions,
           max(ci_units) AS speakers
    FROM chosen
    WHERE aggregation = 'speaker_mean'
    GROUP BY ALL
), ranked AS (
    SELECT s.*, (ccc_arousal + ccc_dominance + ccc_valence) / 3 AS ccc_mean,
           CASE WHEN p.speaker_dimensions = 3 THEN p.speaker_ccc_mean END AS speaker_ccc_mean,
           p.speakers,
           row_number() OVER (
               PARTITION BY s.student, s.reference, s.teacher_id, s.corpus, s.split
               ORDER BY (ccc_arousal + ccc_dominance + ccc_valence) / 3 DESC NULLS LAST,
                        s.model
           ) AS place
    FROM scored s
    LEFT JOIN per_speaker p
      ON p.model_key = s.model_key AND p.reference = s.reference AND p.corpus = s.corpus
     AND p.split = s.split AND p.teacher_id IS NOT DISTINCT FROM s.teacher_id
)
SELECT student, reference, teacher_id, corpus, split, model, ccc_mean,
       ccc_arousal, ccc_arousal_lo, ccc_arousal_hi,
       ccc_dominance, ccc_dominance_lo, ccc_dominance_hi,
       ccc_valence, ccc_valence_lo, ccc_valence_hi,
       speaker_ccc_mean, speakers, ci_level, ci_unit, ci_units,
       n, model_params, model_bytes, evaluated_at
FROM ranked
WHERE place = 1
ORDER BY reference, corpus, split, ccc_mean DESC NULLS LAST, student;
