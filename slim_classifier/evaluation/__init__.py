"""Evaluation of trained image classifiers (eval_image_classifier.py).

* `evaluator`: one exact pass of a checkpoint over a dataset split ->
  metrics.json, a confusion matrix image and TensorBoard summaries;
* `export_evaluation`: the same pass for an export (frozen graph,
  SavedModel, TFLite, ONNX), and its difference from the checkpoint;
* `metrics`, `curves`, `confusion_image`: the figures (counts, ranking,
  calibration) and the pictures.
"""
