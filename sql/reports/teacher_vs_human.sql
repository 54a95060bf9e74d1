-- Teacher vs human: how well each teacher's labels agree with human labels, per corpus.
--
-- Clips with both a teacher label and a human label (latest row of each), one row per
-- (corpus, teacher, dimension): n, CCC (the `ccc` macro: population statistics, as
-- audmetric), Pearson r and MAE. This is the ceiling a distilled student can expect
-- against humans.
--
-- @param corpus      VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param teacher_id  VARCHAR default NULL  Only this teacher; NULL = every teacher.
WITH teacher AS (
    SELECT * FROM latest_teacher_labels
    WHERE $teacher_id IS NULL OR teacher_id = $teacher_id
), human AS (
    SELECT * FROM latest_human_labels
    WHERE $corpus IS NULL OR corpus = $corpus
), pairs AS (
    SELECT h.corpus, t.teacher_id, 'arousal' AS dimension, t.arousal AS teacher, h.arousal AS human
    FROM teacher t JOIN human h USING (audio_id)
    UNION ALL
    SELECT h.corpus, t.teacher_id, 'dominance', t.dominance, h.dominance
    FROM teacher t JOIN human h USING (audio_id)
    UNION ALL
    SELECT h.corpus, t.teacher_id, 'valence', t.valence, h.valence
    FROM teacher t JOIN human h USING (audio_id)
)
SELECT corpus, teacher_id, dimension, count(*) AS n, ccc(teacher, human) AS ccc,
       corr(teacher, human) AS pearson, avg(abs(teacher - human)) AS mae
FROM pairs
GROUP BY corpus, teacher_id, dimension
ORDER BY corpus, teacher_id, list_position(['arousal', 'dominance', 'valence'], dimension);
