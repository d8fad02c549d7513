"""Benchmarks of our miners and loss against the implementations people use today.

``python -m facenet_ext bench --help``; ``runner`` holds the sweep, ``baselines`` the competitors,
``agreement`` the checks that each baseline computes what we say before it is timed.
"""
