"""filters/quality"""
