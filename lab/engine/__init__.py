"""The only layer with side effects on Docker: commands, images, compose, faults."""
