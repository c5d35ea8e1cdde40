"""stylegan_ops"""
