"""Demo data for `genoflow demo` and the tests: a tiny genome and three samples."""
