"""Many files, and long videos cut into chunks, on worker processes or a Ray cluster."""
