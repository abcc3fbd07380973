"""Selection and mixing: sample, repeat (sample.py), token_budget, mix (budget.py), score_top and score_buckets
(by_score.py); the shared draws and cuts (common.py)."""
