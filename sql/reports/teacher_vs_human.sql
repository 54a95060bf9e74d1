-- Teacher vs human: how well each teacher's labels agree with human labels, per corpus.
--
-- Clips with both a teacher label and a human label (latest row of each), one row per
-- (corpus, teacher, dimension): n, CCC (the `ccc` macro: population statistics, as
-- audmetric), Pearson r and MAE. This is the ceiling a distilled student can expect
-- against humans.
--
-- @param corpus      VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param teacher_id  VARCHAR default NULL  Only this teacher; NULL = every teacher.
WITH labels AS (
    SELECT * FROM teacher_human_labels
    WHERE ($teacher_id IS NULL OR teacher_id = $teacher_id)
      AND ($corpus IS NULL OR corpus = $corpus)
), pairs AS (
    SELECT corpus, teacher_id, 'arousal' AS dimension, teacher_arousal AS teacher,
           human_arousal AS human
    FROM labels
    UNION ALL
    SELECT corpus, teacher_id, 'dominance', teacher_dominance, human_dominance FROM labels
    UNION ALL
    SELECT corpus, teacher_id, 'valence', teacher_valence, human_valence FROM labels
)
SELECT corpus, teacher_id, dimension, count(*) AS n, ccc(teacher, human) AS ccc,
       corr(teacher, human) AS pearson, avg(abs(teacher - human)) AS mae
FROM pairs
GROUP BY corpus, teacher_id, dimension
ORDER BY corpus, teacher_id, list_position(['arousal', 'dominance', 'valence'], dimension);
