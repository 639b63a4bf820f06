"""The product commands (plan, apply, refresh, status, export): thin glue over spec, azure, plan and engine."""
