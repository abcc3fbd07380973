"""curate/run"""
