-- Label drift: the distribution of teacher labels per ingest week.
--
-- Weeks are UTC and start on Monday.
-- One row per (teacher, week, dimension): clips, mean, standard deviation and the 10th,
-- 50th and 90th percentiles of the teacher's latest label for clips ingested that week.
-- A shift between weeks means new audio differs from what the students were trained on.
--
-- @param teacher_id  VARCHAR default NULL  Only this teacher; NULL = every teacher.
-- @param corpus      VARCHAR default NULL  Only this corpus; NULL = every corpus.
WITH teacher AS (
    SELECT * FROM latest_teacher_labels
    WHERE $teacher_id IS NULL OR teacher_id = $teacher_id
), clips AS (
    SELECT audio_id, corpus, ingested_at FROM audio
    WHERE $corpus IS NULL OR corpus = $corpus
    QUALIFY row_number() OVER (PARTITION BY audio_id ORDER BY ingested_at) = 1
), weekly AS (
    SELECT t.teacher_id,
           CAST(date_trunc('week', timezone('UTC', c.ingested_at)) AS DATE) AS week,
           t.arousal, t.dominance, t.valence
    FROM teacher t JOIN clips c USING (audio_id)
), long AS (
    SELECT teacher_id, week, 'arousal' AS dimension, arousal AS value FROM weekly
    UNION ALL SELECT teacher_id, week, 'dominance', dominance FROM weekly
    UNION ALL SELECT teacher_id, week, 'valence', valence FROM weekly
)
SELECT teacher_id, week, dimension, count(*) AS clips, avg(value) AS mean,
       stddev_pop(value) AS std, quantile_cont(value, 0.1) AS p10,
       quantile_cont(value, 0.5) AS p50, quantile_cont(value, 0.9) AS p90
FROM long
GROUP BY teacher_id, week, dimension
ORDER BY teacher_id, week, list_position(['arousal', 'dominance', 'valence'], dimension);
