"""A model cache shared by the pods of a node: one download per model and validator, links into it."""
