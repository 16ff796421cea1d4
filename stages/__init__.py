"""ELMo deployment pipeline stages: corpus -> ids -> model -> outputs -> report.

Every stage is a module with one job; ``python -m stages <command>`` runs them.
The code must also run inside the export image (Python 3.9, torch 1.9.1), so
it sticks to syntax and APIs that both environments have.
"""
