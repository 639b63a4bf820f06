"""The only package that calls Azure: credentials, SDK clients, error classification and observation."""
