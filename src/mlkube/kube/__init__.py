"""Kubernetes: kubectl-driven deploy, release, rollback."""
