-- 15_models.sql: published models. The registry inserts its manifests here through
-- ser_pipeline.db.upsert_model(); `ser db build` keeps the rows (IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS models (
    name         VARCHAR NOT NULL,
    version      VARCHAR NOT NULL,
    uri          VARCHAR,          -- registry://name@version or the storage URL
    student      VARCHAR,
    run_id       VARCHAR,
    teacher_id   VARCHAR,
    params       BIGINT,
    size_bytes   BIGINT,          -- bytes of the published (int8) ONNX file
    license      VARCHAR,
    published_at TIMESTAMPTZ,
    manifest     VARCHAR,          -- the whole manifest.json, as JSON text
    PRIMARY KEY (name, version)
);
