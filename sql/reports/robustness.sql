-- Robustness: each model's CCC under perturbations, against audEERING ser-tests' thresholds.
--
-- One row per (model, corpus, split, reference, teacher, perturbation, dimension) from the
-- newest suite run (view `latest_robustness`, written by `ser robustness` and by the
-- publish step of `ser distill`): CCC on clean and on perturbed audio with their
-- intervals, the drop (clean - perturbed) with its paired interval, the share of clips
-- whose prediction moved by less than 0.05, and ser-tests' thresholds (drop at most
-- max_ccc_drop, at least min_unchanged_share unchanged) with pass/fail on the point values.
--
-- @param model      VARCHAR default NULL  Only this model (run id, name@version or file); NULL = all.
-- @param corpus     VARCHAR default NULL  Only this corpus; NULL = every corpus.
-- @param reference  VARCHAR default NULL  'teacher' or 'human'; NULL = both.
SELECT model, student, corpus, split, reference, teacher_id, perturbation, dimension,
       clean_ccc, clean_ccc_lo, clean_ccc_hi, perturbed_ccc, perturbed_ccc_lo,
       perturbed_ccc_hi, ccc_drop, ccc_drop_lo, ccc_drop_hi, unchanged_share,
       max_ccc_drop, min_unchanged_share, passed_drop, passed_unchanged, passed, n_clips,
       ci_level, ci_method, ci_unit, ci_units, ci_resamples, model_file, model_format,
       model_key, description, evaluated_at
FROM latest_robustness
WHERE ($model IS NULL OR model = $model)
  AND ($corpus IS NULL OR corpus = $corpus)
  AND ($reference IS NULL OR reference = $reference)
ORDER BY model, corpus, split, reference, teacher_id,
         list_position(['noise_snr20db', 'noise_snr10db', 'noise_snr5db', 'telephone',
                        'gain_minus20db', 'gain_plus6db_clipped', 'room_rt60_500ms',
                        'tilt_minus3db_per_oct'], perturbation) NULLS LAST, perturbation,
         list_position(['arousal', 'dominance', 'valence'], dimension);
