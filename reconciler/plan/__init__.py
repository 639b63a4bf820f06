"""Pure decisions: desired state x observed snapshot -> the actions that close the gap. No I/O."""
