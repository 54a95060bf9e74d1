-- Student vs teacher: per-clip predictions next to the teacher's labels.
--
-- The data of the scatter in `ser report --html`, in long form: one row per (model,
-- clip, teacher, dimension).
--
-- @param model       VARCHAR default NULL   Only this model (run id or name@version).
-- @param teacher_id  VARCHAR default NULL   Only this teacher; NULL = every teacher.
-- @param split       VARCHAR default NULL   Only clips in this split of `splits` (dev, test).
-- @param max_rows    INTEGER default 100000 At most this many rows.
WITH teacher AS (
    SELECT * FROM latest_teacher_labels
    WHERE $teacher_id IS NULL OR teacher_id = $teacher_id
), prediction AS (
    SELECT * FROM predictions
    WHERE ($model IS NULL OR model = $model)
      AND ($split IS NULL OR audio_id IN (SELECT audio_id FROM splits WHERE split = $split))
    QUALIFY row_number() OVER (PARTITION BY model_key, audio_id ORDER BY predicted_at) = 1
), pairs AS (
    SELECT p.model, p.corpus, p.audio_id, t.teacher_id, 'arousal' AS dimension,
           p.arousal AS student, t.arousal AS teacher
    FROM prediction p JOIN teacher t USING (audio_id)
    UNION ALL
    SELECT p.model, p.corpus, p.audio_id, t.teacher_id, 'dominance', p.dominance, t.dominance
    FROM prediction p JOIN teacher t USING (audio_id)
    UNION ALL
    SELECT p.model, p.corpus, p.audio_id, t.teacher_id, 'valence', p.valence, t.valence
    FROM prediction p JOIN teacher t USING (audio_id)
)
SELECT model, corpus, audio_id, teacher_id, dimension, student, teacher
FROM pairs
ORDER BY model, teacher_id, list_position(['arousal', 'dominance', 'valence'], dimension),
         corpus, audio_id
LIMIT $max_rows;
