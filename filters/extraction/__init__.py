"""filters/extraction"""
