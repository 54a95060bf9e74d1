-- Label coverage: clips per corpus with and without teacher labels, per teacher.
--
-- One row per (corpus, teacher): clips ingested, clips the teacher labeled, clips it has
-- not labeled yet (what the next `ser label` run will do), and clips with human labels.
-- With no teacher labels at all, one row per corpus with teacher_id NULL.
--
-- @param corpus      VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param teacher_id  VARCHAR default NULL  Only this teacher (listed even with 0 labels).
WITH clips AS (
    SELECT DISTINCT audio_id, corpus FROM audio
    WHERE $corpus IS NULL OR corpus = $corpus
), teachers AS (
    SELECT DISTINCT teacher_id FROM teacher_labels WHERE $teacher_id IS NULL
    UNION ALL
    SELECT CAST($teacher_id AS VARCHAR) WHERE $teacher_id IS NOT NULL
), teachers_or_none AS (
    SELECT teacher_id FROM teachers
    UNION ALL
    SELECT CAST(NULL AS VARCHAR) WHERE NOT EXISTS (SELECT 1 FROM teachers)
), labeled AS (
    SELECT DISTINCT audio_id, teacher_id FROM teacher_labels
), human AS (
    SELECT DISTINCT audio_id FROM human_labels
)
SELECT c.corpus, t.teacher_id, count(*) AS clips,
       count(l.audio_id) AS with_teacher_labels,
       count(*) - count(l.audio_id) AS without_teacher_labels,
       round(100.0 * count(l.audio_id) / count(*), 1) AS teacher_coverage_pct,
       count(h.audio_id) AS with_human_labels
FROM clips c
CROSS JOIN teachers_or_none t
LEFT JOIN labeled l ON l.audio_id = c.audio_id AND l.teacher_id = t.teacher_id
LEFT JOIN human h ON h.audio_id = c.audio_id
GROUP BY c.corpus, t.teacher_id
ORDER BY c.corpus, t.teacher_id;
