-- The paper's table: teacher and students against humans and the teacher, with their cost.
--
-- One row per (corpus, split, model). The teacher's row holds its CCC against the human
-- labels (computed here from the teacher_human_labels view,
-- with the `ccc` macro; `ser report paper_table` adds its bootstrap interval from the
-- clips of the `teacher_vs_human_clips` report); a student's row holds its global CCC
-- against the humans and against its teacher with their intervals (`_lo`, `_hi`, from
-- its latest evaluation: the best model per student by mean CCC vs the teacher), and the
-- cost of its newest published version: parameters, int8 file size in KB, ms per 5 s clip
-- on one thread and the peak RSS increase in MB of the file the version serves by
-- default (`cost_file`, from the manifest's `serving.default_file`; schema-1 manifests:
-- `default_file`; without either, int8 when published, as ser predict did then). `model` is the short name (the student family, or the teacher id);
-- `model_id` the full one. Clips without a row in the split definition count under 'all'.
--
-- @param corpus      VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param split       VARCHAR default NULL  Only this split (dev, test, all); NULL = every split.
-- @param teacher_id  VARCHAR default NULL  Only this teacher; NULL = every teacher.
-- @param split_name  VARCHAR default NULL  Split definition for the teacher rows; NULL = each clip's first by name.
WITH split_of AS (
    SELECT audio_id, split FROM splits
    WHERE $split_name IS NULL OR split_name = $split_name
    QUALIFY row_number() OVER (PARTITION BY audio_id ORDER BY split_name, split) = 1
), teacher_rows AS (
    SELECT l.corpus, coalesce(s.split, 'all') AS split, l.teacher_id AS model,
           l.teacher_id AS model_id, 'teacher' AS kind, l.teacher_id,
           ccc(l.teacher_arousal, l.human_arousal) AS human_arousal,
           ccc(l.teacher_dominance, l.human_dominance) AS human_dominance,
           ccc(l.teacher_valence, l.human_valence) AS human_valence, count(*) AS n
    FROM teacher_human_labels l
    LEFT JOIN split_of s USING (audio_id)
    WHERE ($teacher_id IS NULL OR l.teacher_id = $teacher_id)
      AND ($corpus IS NULL OR l.corpus = $corpus)
      AND ($split IS NULL OR coalesce(s.split, 'all') = $split)
    GROUP BY l.corpus, coalesce(s.split, 'all'), l.teacher_id
), global_metrics AS (
    -- the CCC over all clips (the paper's figure); per-speaker means are other rows
    SELECT * FROM latest_metrics WHERE coalesce(aggregation, 'global') = 'global'
), scored AS (
    SELECT coalesce(student, model) AS student, model, model_key, run_id, teacher_id, corpus,
           split,
           max(ccc) FILTER (WHERE reference = 'human' AND dimension = 'arousal') AS human_arousal,
           max(ccc_lo) FILTER (WHERE reference = 'human' AND dimension = 'arousal')
               AS human_arousal_lo,
           max(ccc_hi) FILTER (WHERE reference = 'human' AND dimension = 'arousal')
               AS human_arousal_hi,
           max(ccc) FILTER (WHERE reference = 'human' AND dimension = 'dominance')
               AS human_dominance,
           max(ccc_lo) FILTER (WHERE reference = 'human' AND dimension = 'dominance')
               AS human_dominance_lo,
           max(ccc_hi) FILTER (WHERE reference = 'human' AND dimension = 'dominance')
               AS human_dominance_hi,
           max(ccc) FILTER (WHERE reference = 'human' AND dimension = 'valence') AS human_valence,
           max(ccc_lo) FILTER (WHERE reference = 'human' AND dimension = 'valence')
               AS human_valence_lo,
           max(ccc_hi) FILTER (WHERE reference = 'human' AND dimension = 'valence')
               AS human_valence_hi,
           max(ccc) FILTER (WHERE reference = 'teacher' AND dimension = 'arousal')
               AS teacher_arousal,
           max(ccc_lo) FILTER (WHERE reference = 'teacher' AND dimension = 'arousal')
               AS teacher_arousal_lo,
           max(ccc_hi) FILTER (WHERE reference = 'teacher' AND dimension = 'arousal')
               AS teacher_arousal_hi,
           max(ccc) FILTER (WHERE reference = 'teacher' AND dimension = 'dominance')
               AS teacher_dominance,
           max(ccc_lo) FILTER (WHERE reference = 'teacher' AND dimension = 'dominance')
               AS teacher_dominance_lo,
           max(ccc_hi) FILTER (WHERE reference = 'teacher' AND dimension = 'dominance')
               AS teacher_dominance_hi,
           max(ccc) FILTER (WHERE reference = 'teacher' AND dimension = 'valence')
               AS teacher_valence,
           max(ccc_lo) FILTER (WHERE reference = 'teacher' AND dimension = 'valence')
               AS teacher_valence_lo,
           max(ccc_hi) FILTER (WHERE reference = 'teacher' AND dimension = 'valence')
               AS teacher_valence_hi,
           max(n) FILTER (WHERE reference = 'teacher') AS n,
           max(ci_level) AS ci_level, max(ci_unit) AS ci_unit, max(ci_units) AS ci_units,
           max(model_params) AS model_params
    FROM global_metrics
    WHERE ($corpus IS NULL OR corpus = $corpus)
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
    SELECT coalesce(run_id, json_extract_string(manifest::JSON, '$.provenance.run_id'))
               AS run_id, params, uri, manifest::JSON AS m,
           -- manifests without a serving decision served int8 when they had it
           coalesce(json_extract_string(manifest::JSON, '$.serving.default_file'),
                    json_extract_string(manifest::JSON, '$.default_file'),
                    CASE WHEN json_extract(manifest::JSON, '$.files."model.int8.onnx"') IS NOT NULL
                         THEN 'model.int8.onnx' ELSE 'model.onnx' END) AS served
    FROM models
    QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY published_at DESC, version DESC) = 1
), student_rows AS (
    SELECT b.* EXCLUDE (student, model, model_key, model_params),
           b.student AS model, b.model AS model_id, 'student' AS kind,
           coalesce(p.params, b.model_params) AS params,
           CAST(json_extract(p.m, '$.files."model.int8.onnx".bytes') AS DOUBLE) / 1000
               AS int8_kb,
           CASE WHEN p.served = 'model.int8.onnx' THEN
                    coalesce(CAST(json_extract(p.m, '$.performance.int8.latency_ms') AS DOUBLE),
                             CAST(json_extract(p.m, '$.serving.int8_ms') AS DOUBLE))
                WHEN p.served IS NOT NULL THEN
                    coalesce(CAST(json_extract(p.m, '$.performance.fp32.latency_ms') AS DOUBLE),
                             CAST(json_extract(p.m, '$.serving.fp32_ms') AS DOUBLE))
           END AS ms_per_5s,
           CASE WHEN p.served = 'model.int8.onnx' THEN
                    CAST(json_extract(p.m, '$.performance.int8.peak_rss_increase_mb') AS DOUBLE)
                WHEN p.served IS NOT NULL THEN
                    CAST(json_extract(p.m, '$.performance.fp32.peak_rss_increase_mb') AS DOUBLE)
           END AS peak_rss_mb,
           p.served AS cost_file,
           p.uri AS published_as
    FROM best b LEFT JOIN published p USING (run_id)
)
SELECT corpus, split, kind, model, model_id, teacher_id, n,
       human_arousal, human_arousal_lo, human_arousal_hi,
       human_dominance, human_dominance_lo, human_dominance_hi,
       human_valence, human_valence_lo, human_valence_hi,
       (human_arousal + human_dominance + human_valence) / 3 AS human_mean,
       teacher_arousal, teacher_arousal_lo, teacher_arousal_hi,
       teacher_dominance, teacher_dominance_lo, teacher_dominance_hi,
       teacher_valence, teacher_valence_lo, teacher_valence_hi,
       (teacher_arousal + teacher_dominance + teacher_valence) / 3 AS teacher_mean,
       ci_level, ci_unit, ci_units,
       params, int8_kb, ms_per_5s, peak_rss_mb, cost_file, published_as
FROM (
    SELECT * FROM teacher_rows
    UNION ALL BY NAME
    SELECT * FROM student_rows
)
ORDER BY corpus, split, kind DESC, teacher_mean DESC NULLS LAST, model, model_id;
