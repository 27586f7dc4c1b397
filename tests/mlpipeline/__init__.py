"""Tests of include/mlpipeline, one module per library module."""
