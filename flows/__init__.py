"""Prefect flows over the ser_pipeline library (one file per stage, plus distill and relabel)."""
