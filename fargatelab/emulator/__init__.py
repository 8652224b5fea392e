"""The EKS-on-Fargate emulation: profiles, admission webhooks, fargate-scheduler, nodes, load balancers.

It talks to Kubernetes through the API only, so it runs unchanged against the local control plane and
against kind. ``python -m fargatelab.emulator`` runs it as one process.
"""
