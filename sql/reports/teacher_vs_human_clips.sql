-- Teacher vs human per clip: the pairs behind the teacher rows of the paper's table.
--
-- One row per (clip, teacher) with both a teacher label and a human label (latest row of
-- each), with the clip's corpus, split (the same rule as `paper_table`: clips without a
-- row in the split definition count under 'all') and speaker, so the teacher's CCC
-- against humans can be bootstrapped over speakers (`ser report paper_table` does).
--
-- @param corpus      VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param split       VARCHAR default NULL  Only this split (dev, test, all); NULL = every split.
-- @param teacher_id  VARCHAR default NULL  Only this teacher; NULL = every teacher.
-- @param split_name  VARCHAR default NULL  Split definition; NULL = each clip's first by name.
WITH split_of AS (
    SELECT audio_id, split FROM splits
    WHERE $split_name IS NULL OR split_name = $split_name
    QUALIFY row_number() OVER (PARTITION BY audio_id ORDER BY split_name, split) = 1
), speaker_of AS (
    SELECT audio_id, min(speaker) AS speaker FROM audio GROUP BY audio_id
)
SELECT l.corpus, coalesce(s.split, 'all') AS split, l.teacher_id, l.audio_id, a.speaker,
       l.teacher_arousal, l.teacher_dominance, l.teacher_valence,
       l.human_arousal, l.human_dominance, l.human_valence
FROM teacher_human_labels l
LEFT JOIN split_of s USING (audio_id)
LEFT JOIN speaker_of a USING (audio_id)
WHERE ($corpus IS NULL OR l.corpus = $corpus)
  AND ($teacher_id IS NULL OR l.teacher_id = $teacher_id)
  AND ($split IS NULL OR coalesce(s.split, 'all') = $split)
ORDER BY l.corpus, split, l.teacher_id, l.audio_id;
