"""Evaluation, export and classification of trained image classifiers.

* `evaluator`: one pass over a dataset split -> metrics.json, a confusion
  matrix image and TensorBoard summaries (eval_image_classifier.py);
* `exporter`: a frozen GraphDef, a SavedModel or a TFLite model
  (export_inference_graph.py);
* `classifier`: the top classes of image files from any of those, or from a
  checkpoint (classify_image.py).
"""
