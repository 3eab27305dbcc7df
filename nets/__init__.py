"""Part of slim-image-classifier, installed at the top level under the original TF-Slim name."""

__slim_image_classifier__ = True
