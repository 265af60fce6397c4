"""The configs citygen ships, installed with the package as ``citygen.configs`` (pyproject's package-dir).

Edit the YAML files here; ``citygen configs export DIR`` copies the installed ones into a folder of your own.
"""
