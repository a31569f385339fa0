"""The tables, by area; ``store.schema`` imports them all so the metadata is complete."""
