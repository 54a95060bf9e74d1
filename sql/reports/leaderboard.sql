-- Leaderboard: the best model of each student, per reference, corpus and split.
--
-- "Best" is the highest mean CCC over arousal, dominance and valence, taken from each
-- model's latest evaluation (table `latest_metrics`). One row per (student, reference,
-- teacher, corpus, split); models without a student name count under their model name.
--
-- @param split      VARCHAR default 'test'  Split to rank on (dev, test, all); NULL = every split.
-- @param reference  VARCHAR default NULL    'teacher' or 'human'; NULL = both.
-- @param corpus     VARCHAR default NULL    Only this corpus; NULL = every corpus.
WITH scored AS (
    SELECT coalesce(student, model) AS student, model, model_key, reference, teacher_id,
           corpus, split,
           max(ccc) FILTER (WHERE dimension = 'arousal')   AS ccc_arousal,
           max(ccc) FILTER (WHERE dimension = 'dominance') AS ccc_dominance,
           max(ccc) FILTER (WHERE dimension = 'valence')   AS ccc_valence,
           max(n) AS n, max(model_params) AS model_params, max(model_bytes) AS model_bytes,
           max(evaluated_at) AS evaluated_at
    FROM latest_metrics
    WHERE ($split IS NULL OR split = $split)
      AND ($reference IS NULL OR reference = $reference)
      AND ($corpus IS NULL OR corpus = $corpus)
    GROUP BY ALL
), ranked AS (
    SELECT *, (ccc_arousal + ccc_dominance + ccc_valence) / 3 AS ccc_mean,
           row_number() OVER (
               PARTITION BY student, reference, teacher_id, corpus, split
               ORDER BY (ccc_arousal + ccc_dominance + ccc_valence) / 3 DESC NULLS LAST, model
           ) AS place
    FROM scored
)
SELECT student, reference, teacher_id, corpus, split, model, ccc_mean, ccc_arousal,
       ccc_dominance, ccc_valence, n, model_params, model_bytes, evaluated_at
FROM ranked
WHERE place = 1
ORDER BY reference, corpus, split, ccc_mean DESC NULLS LAST, student;
