"""Chinese-first semantic search and exact citation lookup."""
