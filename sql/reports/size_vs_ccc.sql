-- Size vs CCC: every evaluated model's parameter count and file size against its CCC.
--
-- One row per (model, corpus): parameters, bytes (checkpoint or ONNX file) and CCC per
-- dimension from the latest evaluation (the global CCC over all clips), smallest models
-- first. The paper's trade-off: Wav2Small (~72K params, ~120 KB int8) against
-- MobileNets (millions of params).
--
-- @param reference  VARCHAR default 'teacher'  'teacher' or 'human'.
-- @param split      VARCHAR default 'test'     Split (dev, test, all).
-- @param corpus     VARCHAR default NULL       Only this corpus; NULL = every corpus.
SELECT model, coalesce(student, model) AS student, model_format, corpus, teacher_id,
       max(model_params) AS model_params, max(model_bytes) AS model_bytes,
       avg(ccc) AS ccc_mean,
       max(ccc) FILTER (WHERE dimension = 'arousal')   AS ccc_arousal,
       max(ccc) FILTER (WHERE dimension = 'dominance') AS ccc_dominance,
       max(ccc) FILTER (WHERE dimension = 'valence')   AS ccc_valence,
       max(n) AS n
FROM latest_metrics
WHERE reference = $reference
  AND split = $split
  AND aggregation = 'global'
  AND ($corpus IS NULL OR corpus = $corpus)
GROUP BY model, student, model_format, corpus, teacher_id
ORDER BY model_params NULLS LAST, model, corpus, teacher_id;
