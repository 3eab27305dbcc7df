# `make demo`: set up and run the main job end to end on the embedded digits dataset.
# `make test`: set up and run the test suite. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_output

.PHONY: demo test bench clean

DATA := $(DEMO_DIR)/digits
TRAIN := $(DEMO_DIR)/train

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on --upgrade pip
	@echo "Installing TensorFlow and the other dependencies (about 1 minute on a fast connection)"
	$(PY) -m pip install --progress-bar on -e '.[test]'
	touch $@

# The disk-full tests mount tmpfs file systems, which needs root: as another user the
# suite runs as root of a user and mount namespace of its own, where the kernel allows one.
AS_ROOT := $(if $(filter 0,$(shell id -u)),,$(shell unshare --user --map-root-user --mount \
	true 2>/dev/null && echo unshare --user --map-root-user --mount))

test: $(VENV)/.installed
	$(PY) -m pytest -q tests/test_smoke.py
	$(AS_ROOT) $(PY) -m pytest -q -n 3 --durations=15 --deselect tests/test_smoke.py tests

demo: $(VENV)/.installed
	$(PY) download_and_convert_data.py --dataset_name=digits --dataset_dir=$(DATA)
	$(PY) train_image_classifier.py --dataset_name=digits --dataset_dir=$(DATA) \
	    --model_name=lenet --train_dir=$(TRAIN) --optimizer=momentum --learning_rate=0.01 \
	    --learning_rate_decay_type=fixed --weight_decay=0 --batch_size=32 \
	    --max_number_of_steps=1000 --log_every_n_steps=100
	$(PY) eval_image_classifier.py --checkpoint_path=$(TRAIN) --eval_dir=$(DEMO_DIR)/eval
	$(PY) export_inference_graph.py --checkpoint_path=$(TRAIN) --export_format=saved_model \
	    --output_file=$(DEMO_DIR)/saved_model
	$(PY) -c "from sklearn.datasets import load_digits; from PIL import Image; \
	    Image.fromarray((load_digits().images[-1] * 255 / 16).astype('uint8')) \
	    .resize((28, 28)).save('$(DEMO_DIR)/digit.png')"
	$(PY) classify_image.py --model_path=$(DEMO_DIR)/saved_model $(DEMO_DIR)/digit.png
	@$(PY) -c "import json; m = json.load(open('$(DEMO_DIR)/eval/metrics.json')); \
	    print('\nDemo done: LeNet reached %.1f%% accuracy on the digits test split.' \
	          % (100 * m['accuracy'])); \
	    print('  dataset       $(DATA)'); print('  training run  $(TRAIN)'); \
	    print('  evaluation    $(DEMO_DIR)/eval (metrics.json, confusion_matrix.png)'); \
	    print('  export        $(DEMO_DIR)/saved_model')"

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
