"""Installs the slim image classification framework and its commands.

What is ours alone lives in the `slim_classifier` package. The packages that
keep the original TF-Slim import paths (`nets`, `datasets`, `preprocessing`,
`deployment`) are installed beside it; `slim_classifier.packaging` refuses to
run when another distribution has put files into one of them.
"""

from setuptools import find_packages, setup

COMMANDS = (
    'train_image_classifier',
    'eval_image_classifier',
    'export_inference_graph',
    'download_and_convert_data',
    'classify_image',
    'predict_image_classifier',
    'launch_local_cluster',
    'list_models',
    'fetch_pretrained',
)
ONNX = ['tf2onnx>=1.17', 'onnx>=1.14', 'onnxruntime>=1.17']

setup(
    name='slim-image-classifier',
    version='0.2.0',
    description='TF-Slim style image classification training on current TensorFlow.',
    python_requires='>=3.10,<3.13',
    packages=find_packages(include=['slim_classifier', 'slim_classifier.*', 'datasets', 'nets',
                                    'nets.*', 'preprocessing', 'deployment']),
    py_modules=list(COMMANDS),
    package_data={'datasets': ['imagenet_classes.txt']},
    install_requires=[
        'tensorflow>=2.16,<2.22',
        'tf-keras>=2.16,<2.22',
        'tf-slim>=1.1,<1.2',
        'numpy>=1.26,<3',
        'absl-py>=1.0',
        'pillow>=10.0',
    ],
    extras_require={
        # The embedded default dataset (`digits`) is scikit-learn's bundled copy.
        'digits': ['scikit-learn>=1.3'],
        # export_inference_graph.py --export_format=onnx; 1.17 is the first tf2onnx that
        # accepts the protobuf of TensorFlow 2.21.
        'onnx': ONNX,
        # The ONNX exports are tested too, so the test set-up installs the onnx extra;
        # cryptography makes the HTTPS test server's certificate.
        'test': ['pytest>=8', 'pytest-xdist>=3', 'scikit-learn>=1.3', 'cryptography>=42',
                 *ONNX],
    },
    entry_points={
        'console_scripts': ['%s=%s:run' % (name, name) for name in COMMANDS],
    },
)
