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
SELECT h.corpus, coalesce(s.split, 'all') AS split, t.teacher_id, h.audio_id, a.speaker,
       t.arousal AS teacher_arousal, t.dominance AS teacher_dominance,
       t.valence AS teacher_valence, h.arousal AS human_arousal,
       h.dominance AS human_dominance, h.valence AS human_valence
FROM latest_teacher_labels t
JOIN latest_human_labels h USING (audio_id)
LEFT JOIN split_of s USING (audio_id)
LEFT JOIN speaker_of a USING (audio_id)
WHERE ($corpus IS NULL OR h.corpus = $corpus)
  AND ($teacher_id IS NULL OR t.teacher_id = $teacher_id)
  AND ($split IS NULL OR coalesce(s.split, 'all') = $split)
ORDER BY h.corpus, split, t.teacher_id, h.audio_id;
