-- The paper's table: teacher and students against humans and the teacher, with their cost.
--
-- One row per (corpus, split, model). The teacher's row holds its CCC against the human
-- labels (computed here from the latest_teacher_labels and latest_human_labels views,
-- with the `ccc` macro); a student's row holds its CCC against the humans and
-- against its teacher from its latest evaluation (the best model per student by mean CCC
-- vs the teacher), and the cost figures of its newest published version: parameters,
-- int8 file size in KB, milliseconds per 5 s clip on one thread and the peak RSS increase
-- in MB, both from the registry's measurements (int8 when published, else fp32).
-- Clips without a row in the split definition count under split 'all'.
--
-- @param corpus      VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param split       VARCHAR default NULL  Only this split (dev, test, all); NULL = every split.
-- @param teacher_id  VARCHAR default NULL  Only this teacher; NULL = every teacher.
-- @param split_name  VARCHAR default NULL  Split definition for the teacher rows; NULL = each clip's first by name.
WITH split_of AS (
    SELECT audio_id, split FROM splits
    WHERE $split_name IS NULL OR split_name = $split_name
    QUALIFY row_number() OVER (PARTITION BY audio_id ORDER BY split_name, split) = 1
), teacher AS (
    SELECT * FROM latest_teacher_labels
    WHERE $teacher_id IS NULL OR teacher_id = $teacher_id
), human AS (
    SELECT * FROM latest_human_labels
    WHERE $corpus IS NULL OR corpus = $corpus
), teacher_rows AS (
    SELECT h.corpus, coalesce(s.split, 'all') AS split, t.teacher_id AS model,
           'teacher' AS kind, t.teacher_id,
           ccc(t.arousal, h.arousal) AS human_arousal,
           ccc(t.dominance, h.dominance) AS human_dominance,
           ccc(t.valence, h.valence) AS human_valence,
           CAST(NULL AS DOUBLE) AS teacher_arousal, CAST(NULL AS DOUBLE) AS teacher_dominance,
           CAST(NULL AS DOUBLE) AS teacher_valence, count(*) AS n
    FROM teacher t
    JOIN human h USING (audio_id)
    LEFT JOIN split_of s USING (audio_id)
    WHERE $split IS NULL OR coalesce(s.split, 'all') = $split
    GROUP BY h.corpus, coalesce(s.split, 'all'), t.teacher_id
), scored AS (
    SELECT coalesce(student, model) AS student, model, model_key, run_id, teacher_id, corpus,
           split,
           max(ccc) FILTER (WHERE reference = 'human' AND dimension = 'arousal') AS human_arousal,
           max(ccc) FILTER (WHERE reference = 'human' AND dimension = 'dominance')
               AS human_dominance,
           max(ccc) FILTER (WHERE reference = 'human' AND dimension = 'valence') AS human_valence,
           max(ccc) FILTER (WHERE reference = 'teacher' AND dimension = 'arousal')
               AS teacher_arousal,
           max(ccc) FILTER (WHERE reference = 'teacher' AND dimension = 'dominance')
               AS teacher_dominance,
           max(ccc) FILTER (WHERE reference = 'teacher' AND dimension = 'valence')
               AS teacher_valence,
           max(n) FILTER (WHERE reference = 'teacher') AS n,
           max(model_params) AS model_params
    FROM latest_metrics
    WHERE aggregation = 'global'
      AND ($corpus IS NULL OR corpus = $corpus)
      AND ($split IS NULL OR split = $split)
      AND ($teacher_id IS NULL OR teacher_id = $teacher_id)
    GROUP BY ALL
), best AS (
    SELECT * FROM scored
    QUALIFY row_number() OVER (
        PARTITION BY student, teacher_id, corpus, split
        ORDER BY (teacher_arousal + teacher_dominance + teacher_valence) / 3 DESC NULLS LAST,
                 model) = 1
), published AS (
    SELECT run_id, params, manifest::JSON AS m FROM models
    QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY published_at DESC, version DESC) = 1
), student_rows AS (
    SELECT b.corpus, b.split, b.student AS model, 'student' AS kind, b.teacher_id,
           b.human_arousal, b.human_dominance, b.human_valence,
           b.teacher_arousal, b.teacher_dominance, b.teacher_valence, b.n,
           coalesce(p.params, b.model_params) AS params,
           CAST(json_extract(p.m, '$.files."model.int8.onnx".bytes') AS DOUBLE) / 1000
               AS int8_kb,
           coalesce(CAST(json_extract(p.m, '$.performance.int8.latency_ms') AS DOUBLE),
                    CAST(json_extract(p.m, '$.performance.fp32.latency_ms') AS DOUBLE))
               AS ms_per_5s,
           coalesce(CAST(json_extract(p.m, '$.performance.int8.peak_rss_increase_mb') AS DOUBLE),
                    CAST(json_extract(p.m, '$.performance.fp32.peak_rss_increase_mb') AS DOUBLE))
               AS peak_rss_mb,
           json_extract_string(p.m, '$.uri') AS published_as
    FROM best b LEFT JOIN published p USING (run_id)
)
SELECT corpus, split, kind, model, teacher_id, n,
       human_arousal, human_dominance, human_valence,
       (human_arousal + human_dominance + human_valence) / 3 AS human_mean,
       teacher_arousal, teacher_dominance, teacher_valence,
       (teacher_arousal + teacher_dominance + teacher_valence) / 3 AS teacher_mean,
       params, int8_kb, ms_per_5s, peak_rss_mb, published_as
FROM (
    SELECT *, CAST(NULL AS BIGINT) AS params, CAST(NULL AS DOUBLE) AS int8_kb,
           CAST(NULL AS DOUBLE) AS ms_per_5s, CAST(NULL AS DOUBLE) AS peak_rss_mb,
           CAST(NULL AS VARCHAR) AS published_as
    FROM teacher_rows
    UNION ALL BY NAME
    SELECT * FROM student_rows
)
ORDER BY corpus, split, kind DESC, teacher_mean DESC NULLS LAST, model;
