"""filters/sampling"""
