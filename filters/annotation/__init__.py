"""filters/annotation"""
