"""What a lease names: model specs, model URIs and the values files they come from."""
