"""``kcompile report``: one self-contained HTML page of a model's graphs at every stage,
what each pass changed, the memory plan and the kernel profile."""

from kcompile.report.build import write_report

__all__ = ["write_report"]
