"""Model-based quality: the fastText classifier and `curate classifier`, quality_score, score_threshold, perplexity."""
