"""The product commands: thin glue over the spec, azure, plan and engine packages."""
