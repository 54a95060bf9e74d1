-- 30_macros.sql: SQL helpers.

-- Lin's concordance correlation coefficient with population statistics, as
-- audmetric.concordance_cc computes it (and as the paper reports it):
--   2 * cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)
-- An aggregate macro: use it with GROUP BY, e.g.
--   SELECT corpus, ccc(p.arousal, t.arousal) FROM ... GROUP BY corpus;
-- Only pairs where both sides are non-NULL count. NULL (never NaN) when undefined:
-- fewer than 2 pairs, or both sides constant and equal (audmetric returns NaN there).
CREATE OR REPLACE MACRO ccc(x, y) AS
    CASE WHEN count(x + y) < 2 THEN NULL ELSE
        2 * covar_pop(x, y) / nullif(
            var_pop(x) FILTER (WHERE y IS NOT NULL)
            + var_pop(y) FILTER (WHERE x IS NOT NULL)
            + (avg(x) FILTER (WHERE y IS NOT NULL) - avg(y) FILTER (WHERE x IS NOT NULL)) ^ 2,
            0)
    END;
