-- Ingest health: quarantined files by stage, corpus and reason.
--
-- One row per (stage, corpus, reason) with the number of quarantined records, first and
-- last occurrence, one example message, and how many clips of that corpus did make it
-- into `audio` (for scale).
--
-- @param stage   VARCHAR default NULL  Only this stage (ingest, label, evaluate, ...).
-- @param corpus  VARCHAR default NULL  Only this corpus; NULL = every corpus.
WITH ingested AS (
    SELECT corpus, count(DISTINCT audio_id) AS ingested FROM audio GROUP BY corpus
)
SELECT q.stage, q.corpus, q.reason, count(*) AS quarantined,
       min(q.quarantined_at) AS first_seen, max(q.quarantined_at) AS last_seen,
       min(q.message) AS example_message, coalesce(any_value(i.ingested), 0) AS ingested
FROM quarantine q
LEFT JOIN ingested i ON i.corpus = q.corpus
WHERE ($stage IS NULL OR q.stage = $stage)
  AND ($corpus IS NULL OR q.corpus = $corpus)
GROUP BY q.stage, q.corpus, q.reason
ORDER BY quarantined DESC, q.stage, q.corpus, q.reason;
