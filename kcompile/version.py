"""The version of kcompile, in a module of its own so that any module can read it without
importing the package's initializer (which imports the artifact loader)."""

__version__ = "0.1.0"
