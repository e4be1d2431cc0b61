"""Benchmarks: prompt sets with their own evaluators (benchmarks/base.py's interface; registry.py names them)."""

from benchmarks.base import Benchmark, BenchmarkError, Evaluator, Scored, category_table
from benchmarks.registry import BENCHMARKS, GENEVAL_TAGS, coco_classes, get, oracle

__all__ = ["BENCHMARKS", "GENEVAL_TAGS", "Benchmark", "BenchmarkError", "Evaluator", "Scored", "category_table",
           "coco_classes", "get", "oracle"]
