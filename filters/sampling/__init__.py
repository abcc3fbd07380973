"""Selection and mixing: sample, repeat (sample.py), token_budget, mix (budget.py), score_top, score_buckets (by_score.py)."""
