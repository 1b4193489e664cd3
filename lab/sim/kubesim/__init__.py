"""kubesim: SIMULATORS of Kubernetes binaries, test equipment for kubenorn's lab.

Standard library only: it runs on the lab hosts' Debian python3. It is not Kubernetes.
"""
