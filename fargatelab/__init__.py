"""fargate-labs: the EKS-on-Fargate workshop labs replayed as pytest scenarios."""

__all__: list[str] = []
