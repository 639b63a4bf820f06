"""Desired state: validated models of the config file and the loader that builds them. No I/O to Azure."""
