"""A sim node as a whole: PID 1 and reconfigure, gitlab-ctl, gitlab-rake, the health check."""
