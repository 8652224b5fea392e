"""The AWS side of the local environment: a moto server extended with EKS-on-Fargate behaviour."""
