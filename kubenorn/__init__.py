"""kubenorn: deploy and keep verifying a highly available Kubernetes cluster with Nornir."""
