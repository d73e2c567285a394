"""Which secret applies to a model, and reading it without ever showing it."""
