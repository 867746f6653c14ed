"""The processing stages, each a short function over the store: intake, process, correlate."""
