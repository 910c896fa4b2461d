"""ProbeRunnerService: runs probe sets through served classifiers."""
