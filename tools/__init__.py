"""Developer tools: scripts run by hand or by the tests, never by the pipeline."""
