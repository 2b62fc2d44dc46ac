"""The test suite (a regular package, so `tests.helpers` is ours even where a dependency installs a
top-level `tests` package of its own, as deepstack-python does)."""
