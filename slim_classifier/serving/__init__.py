"""Using a trained net: export (frozen graph, SavedModel, TFLite) and classification."""
