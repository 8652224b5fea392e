"""Pure rules of EKS on Fargate: no I/O, so they are tested in milliseconds and reused by ``explain``."""
