-- 20_views.sql: views over the lake's large Parquet tables. They read the lake when
-- queried (new part files show up without a rebuild).
--
-- Placeholders: {{audio}} {{human_labels}} {{teacher_labels}} {{splits}} {{predictions}}
-- {{quarantine}} {{drift}} become read_parquet('<lake>/<table>/part-*.parquet', ...) over the lake
-- URL from the settings (validated, quoted), or an empty relation with the table's
-- columns when the table has no part files yet.

-- Audio metadata WITHOUT the audio bytes (the `audio` struct is never read).
CREATE OR REPLACE VIEW audio AS
SELECT audio_id, corpus, source_path, duration_s, orig_sample_rate, orig_channels,
       orig_format, speaker, split, is_silent, ingested_at, gender
FROM {{audio}} AS a;

CREATE OR REPLACE VIEW human_labels AS SELECT * FROM {{human_labels}} AS h;

CREATE OR REPLACE VIEW teacher_labels AS SELECT * FROM {{teacher_labels}} AS t;

CREATE OR REPLACE VIEW splits AS SELECT * FROM {{splits}} AS s;

CREATE OR REPLACE VIEW predictions AS SELECT * FROM {{predictions}} AS p;

CREATE OR REPLACE VIEW quarantine AS SELECT * FROM {{quarantine}} AS q;

-- The current teacher label of each (teacher, clip): relabelling adds rows, and the newest
-- (labeled_at) wins; between rows labelled at the same moment, the lowest teacher_sha256,
-- then the smallest (arousal, dominance, valence), so the choice never depends on file
-- order. Reports that need the current labels (paper_table, teacher_vs_human,
-- student_vs_teacher, label_drift) and `ser evaluate` (through
-- ser_pipeline.db.lake_views) read them here: these two views are the one definition.
CREATE OR REPLACE VIEW latest_teacher_labels AS
SELECT * FROM teacher_labels
QUALIFY row_number() OVER (PARTITION BY teacher_id, audio_id
                           ORDER BY labeled_at DESC, teacher_sha256 ASC NULLS LAST,
                                    arousal ASC NULLS LAST, dominance ASC NULLS LAST,
                                    valence ASC NULLS LAST) = 1;

-- The current human label of each clip: the newest ingest (ingested_at) wins; between
-- rows ingested at the same moment, the smallest (arousal, dominance, valence), so re-runs
-- score the same rows. A clip's audio is stored once, under one corpus, so its human
-- labels all carry that corpus.
CREATE OR REPLACE VIEW latest_human_labels AS
SELECT * FROM human_labels
QUALIFY row_number() OVER (PARTITION BY audio_id
                           ORDER BY ingested_at DESC, arousal ASC NULLS LAST,
                                    dominance ASC NULLS LAST, valence ASC NULLS LAST,
                                    source_scale ASC NULLS LAST) = 1;

-- Every clip with both a current teacher label and a current human label: one row per
-- (teacher, clip), the clip's corpus, and both labels side by side (teacher_arousal, ...,
-- human_valence). The reports that score teachers against humans (teacher_vs_human,
-- paper_table's teacher rows) start here.
CREATE OR REPLACE VIEW teacher_human_labels AS
SELECT h.corpus, t.teacher_id, audio_id,
       t.arousal AS teacher_arousal, t.dominance AS teacher_dominance,
       t.valence AS teacher_valence,
       h.arousal AS human_arousal, h.dominance AS human_dominance, h.valence AS human_valence
FROM latest_teacher_labels t
JOIN latest_human_labels h USING (audio_id);

-- Relabel drift reports: one row per (report, dimension), see ser_pipeline/drift.py.
CREATE OR REPLACE VIEW drift AS SELECT * FROM {{drift}} AS d;

-- The latest evaluation of each (model, corpus, split, reference, teacher, aggregation,
-- dimension): re-evaluating after labels change adds rows; reports want the current ones.
-- `aggregation` is 'global' (CCC over all clips, the paper's figure) or 'speaker_mean'
-- (the mean of per-speaker CCCs); rows written before the column existed (NULL) are
-- global CCCs and read as 'global'. Reports pick the aggregation they mean: global unless
-- they say otherwise.
CREATE OR REPLACE VIEW latest_metrics AS
SELECT * REPLACE (coalesce(aggregation, 'global') AS aggregation) FROM metrics
QUALIFY row_number() OVER (
    PARTITION BY model_key, corpus, split, reference, coalesce(teacher_id, ''),
                 coalesce(aggregation, 'global'), dimension
    ORDER BY evaluated_at DESC, eval_id) = 1;

-- The latest fairness slices of each (model, corpus, split, reference, teacher, attribute),
-- from the newest evaluation that wrote slices (see the `fairness` table).
CREATE OR REPLACE VIEW latest_fairness AS
SELECT * FROM fairness
QUALIFY dense_rank() OVER (
    PARTITION BY model_key, corpus, split, reference, coalesce(teacher_id, ''), attribute
    ORDER BY evaluated_at DESC, eval_id) = 1;
